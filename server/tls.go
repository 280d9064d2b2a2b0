package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// TLSInfo is the TLS setting of one side, clients or peers, with etcd's
// flags: --cert-file, --key-file, --trusted-ca-file, --client-cert-auth,
// --auto-tls and their --peer- twins.
type TLSInfo struct {
	CertFile      string
	KeyFile       string
	TrustedCAFile string
	// ClientCertAuth refuses connections without a certificate signed by
	// TrustedCAFile.
	ClientCertAuth bool
	// AutoTLS uses a self-signed certificate generated into the data
	// directory when no CertFile is given.
	AutoTLS bool
	// CRLFile lists revoked certificates: connections showing one are
	// refused (--client-crl-file, --peer-crl-file).
	CRLFile string
	// AllowedCNs and AllowedHostname, if set, are what a client
	// certificate must name (--peer-cert-allowed-cn,
	// --peer-cert-allowed-hostname).
	AllowedCNs      []string
	AllowedHostname string
}

// hasCert reports whether the side can serve TLS.
func (t TLSInfo) hasCert() bool { return t.CertFile != "" || t.AutoTLS }

func (t TLSInfo) validate(prefix string) error {
	if (t.CertFile == "") != (t.KeyFile == "") {
		return fmt.Errorf("--%scert-file and --%skey-file must be given together", prefix, prefix)
	}
	return nil
}

// selfCertValidity is how long auto-TLS certificates are valid
// (--self-signed-cert-validity, in years).
func (c *Config) selfCertValidity() time.Duration {
	return time.Duration(c.SelfSignedCertValidityYears) * 365 * 24 * time.Hour
}

// tlsVersions are the names --tls-min-version and --tls-max-version take.
var tlsVersions = map[string]uint16{"TLS1.2": tls.VersionTLS12, "TLS1.3": tls.VersionTLS13}

// tlsConfigs are the TLS configurations a member serves and dials with;
// nil where the side has no TLS.
type tlsConfigs struct {
	client     *tls.Config // the client listeners
	peerServer *tls.Config // the peer listeners
	peerClient *tls.Config // dialing other members
}

// validateTLS checks the TLS flags and that every https URL has a
// certificate, with etcd's messages.
func (c *Config) validateTLS() error {
	if err := c.ClientTLS.validate(""); err != nil {
		return err
	}
	if err := c.PeerTLS.validate("peer-"); err != nil {
		return err
	}
	for _, u := range slices.Concat(c.ListenClientURLs, c.AdvertiseClientURLs, c.ListenMetricsURLs, c.ListenClientHTTPURLs) {
		if secureURL(u) && !c.ClientTLS.hasCert() {
			return fmt.Errorf("TLS key/cert (--cert-file, --key-file) must be provided for client url %s with HTTPS scheme", u)
		}
	}
	for _, u := range append(slices.Clone(c.ListenPeerURLs), c.InitialAdvertisePeerURLs...) {
		if secureURL(u) && !c.PeerTLS.hasCert() {
			return fmt.Errorf("TLS key/cert (--peer-cert-file, --peer-key-file) must be provided for peer url %s with HTTPS scheme", u)
		}
	}
	_, err := c.tlsBase()
	return err
}

// tlsBase is the part of every TLS configuration the version and cipher
// flags decide.
func (c *Config) tlsBase() (*tls.Config, error) {
	base := &tls.Config{MinVersion: tls.VersionTLS12}
	for _, v := range []struct {
		flag, val string
		dst       *uint16
	}{{"--tls-min-version", c.TLSMinVersion, &base.MinVersion}, {"--tls-max-version", c.TLSMaxVersion, &base.MaxVersion}} {
		if v.val == "" {
			continue
		}
		n, ok := tlsVersions[v.val]
		if !ok {
			return nil, fmt.Errorf("%s: unknown TLS version %q: want TLS1.2 or TLS1.3", v.flag, v.val)
		}
		*v.dst = n
	}
	if base.MaxVersion != 0 && base.MaxVersion < base.MinVersion {
		return nil, fmt.Errorf("--tls-min-version %s is greater than --tls-max-version %s", c.TLSMinVersion, c.TLSMaxVersion)
	}
	if len(c.CipherSuites) > 0 && base.MinVersion == tls.VersionTLS13 {
		return nil, errors.New("--cipher-suites cannot be used with --tls-min-version TLS1.3: TLS 1.3 cipher suites are not configurable")
	}
	byName := map[string]uint16{}
	for _, cs := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		byName[cs.Name] = cs.ID
	}
	// etcd also takes the ChaCha20 suites under Go's older names.
	byName["TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305"] = tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
	byName["TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305"] = tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
	for _, name := range c.CipherSuites {
		id, ok := byName[name]
		if !ok {
			return nil, fmt.Errorf("--cipher-suites: unexpected TLS cipher suite %q", name)
		}
		base.CipherSuites = append(base.CipherSuites, id)
	}
	return base, nil
}

// newTLSConfigs loads the certificates (generating auto-TLS ones) for the
// sides whose URLs are https.
func newTLSConfigs(c *Config, log *slog.Logger) (tlsConfigs, error) {
	var out tlsConfigs
	base, err := c.tlsBase()
	if err != nil {
		return out, err
	}
	if anyHTTPS(c.ListenClientURLs) || anyHTTPS(c.ListenMetricsURLs) || anyHTTPS(c.ListenClientHTTPURLs) {
		certs, err := loadSide(c.ClientTLS, filepath.Join(c.DataDir, "fixtures", "client"), slices.Concat(c.ListenClientURLs, c.AdvertiseClientURLs, c.ListenMetricsURLs, c.ListenClientHTTPURLs), c.selfCertValidity(), log)
		if err != nil {
			return out, err
		}
		out.client = certs.serverConfig(base, c.ClientTLS, "h2", "http/1.1")
	} else if c.ClientTLS.CertFile != "" {
		log.Warn("the client URLs are http: ignoring --cert-file and --key-file")
	}
	peerURLs := slices.Concat(c.ListenPeerURLs, c.InitialAdvertisePeerURLs)
	servesTLS := anyHTTPS(peerURLs)
	// Peers are dialed with TLS whenever their URL says https, even by a
	// member without a certificate of its own (a peer that does not ask
	// for client certificates takes it); a member that serves http
	// generates no auto-TLS certificate.
	side := c.PeerTLS
	side.AutoTLS = side.AutoTLS && servesTLS
	certs, err := loadSide(side, filepath.Join(c.DataDir, "fixtures", "peer"), peerURLs, c.selfCertValidity(), log)
	if err != nil {
		return out, err
	}
	out.peerClient = certs.clientConfig(base, c.PeerTLS)
	if servesTLS {
		// Peers speak HTTP/1.1, as etcd's.
		out.peerServer = certs.serverConfig(base, c.PeerTLS, "http/1.1")
	} else if c.PeerTLS.CertFile != "" {
		log.Warn("the peer URLs are http: ignoring --peer-cert-file and --peer-key-file")
	}
	return out, nil
}

func anyHTTPS(urls []string) bool {
	return slices.ContainsFunc(urls, func(u string) bool { return secureURL(u) })
}

// verifyClient checks a verified client certificate against the
// revocation list and the names it must carry.
func (sc sideCerts) verifyClient(t TLSInfo) func([][]byte, [][]*x509.Certificate) error {
	if sc.revoked == nil && len(t.AllowedCNs) == 0 && t.AllowedHostname == "" {
		return nil
	}
	return func(_ [][]byte, chains [][]*x509.Certificate) error {
		if len(chains) == 0 || len(chains[0]) == 0 {
			return nil // no certificate: ClientAuth decides
		}
		leaf := chains[0][0]
		if sc.revoked[leaf.SerialNumber.String()] {
			return fmt.Errorf("certificate %s is revoked", leaf.SerialNumber)
		}
		if len(t.AllowedCNs) > 0 && !slices.Contains(t.AllowedCNs, leaf.Subject.CommonName) {
			return fmt.Errorf("certificate common name %q is not allowed", leaf.Subject.CommonName)
		}
		if t.AllowedHostname != "" {
			if err := leaf.VerifyHostname(t.AllowedHostname); err != nil {
				return fmt.Errorf("certificate is not for the allowed hostname: %w", err)
			}
		}
		return nil
	}
}

// loadCRL returns the serial numbers a revocation list revokes.
func loadCRL(path string) (map[string]bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("CRL file: %w", err)
	}
	if blk, _ := pem.Decode(b); blk != nil {
		b = blk.Bytes
	}
	crl, err := x509.ParseRevocationList(b)
	if err != nil {
		return nil, fmt.Errorf("CRL file %s: %w", path, err)
	}
	out := map[string]bool{}
	for _, e := range crl.RevokedCertificateEntries {
		out[e.SerialNumber.String()] = true
	}
	return out, nil
}

// sideCerts is one side's certificate (reloaded when its files change,
// so certificates rotate without a restart; nil when the side has none)
// and trusted CAs.
type sideCerts struct {
	cert    *certReloader
	cas     *x509.CertPool
	revoked map[string]bool // serial numbers, from the CRL file
}

func loadSide(t TLSInfo, autoDir string, urls []string, validity time.Duration, log *slog.Logger) (sideCerts, error) {
	out := sideCerts{}
	if t.CRLFile != "" {
		var err error
		if out.revoked, err = loadCRL(t.CRLFile); err != nil {
			return out, err
		}
	}
	if t.TrustedCAFile != "" {
		pemBytes, err := os.ReadFile(t.TrustedCAFile)
		if err != nil {
			return out, fmt.Errorf("trusted CA file: %w", err)
		}
		out.cas = x509.NewCertPool()
		if !out.cas.AppendCertsFromPEM(pemBytes) {
			return out, fmt.Errorf("trusted CA file %s: no PEM certificate in it", t.TrustedCAFile)
		}
	}
	if !t.hasCert() {
		return out, nil
	}
	certFile, keyFile := t.CertFile, t.KeyFile
	if certFile == "" {
		var err error
		if certFile, keyFile, err = selfCert(autoDir, urls, validity); err != nil {
			return sideCerts{}, err
		}
		log.Info("using an automatically generated self-signed certificate", "cert-file", certFile)
	}
	r, err := newCertReloader(certFile, keyFile)
	if err != nil {
		return sideCerts{}, err
	}
	out.cert = r
	return out, nil
}

// serverConfig: with ClientCertAuth or a trusted CA, a client must show
// a certificate that CA signed. etcd requires one whenever a trusted CA
// file is given, whatever --client-cert-auth says (its help says so), and
// operators rely on it: accepting clients without one would let them past
// a check etcd makes.
func (sc sideCerts) serverConfig(base *tls.Config, t TLSInfo, protos ...string) *tls.Config {
	cfg := base.Clone()
	cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return sc.cert.get() }
	cfg.NextProtos = protos
	cfg.ClientCAs = sc.cas
	cfg.VerifyPeerCertificate = sc.verifyClient(t)
	if t.ClientCertAuth || sc.cas != nil {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg
}

// clientConfig is a member's when it dials another: it shows its peer
// certificate and trusts the peer CA; with auto TLS, whose certificates
// no one signed, it verifies nothing, as etcd's peers do.
func (sc sideCerts) clientConfig(base *tls.Config, t TLSInfo) *tls.Config {
	cfg := base.Clone()
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		if sc.cert == nil {
			return &tls.Certificate{}, nil // none to show
		}
		return sc.cert.get()
	}
	cfg.RootCAs = sc.cas
	cfg.InsecureSkipVerify = t.CertFile == "" && t.AutoTLS
	return cfg
}

// certReloader serves a key pair from files, reading them again when
// their modification time changes.
type certReloader struct {
	certFile, keyFile string
	mu                sync.Mutex
	cert              *tls.Certificate
	certMod, keyMod   time.Time
	checked           time.Time
}

func newCertReloader(certFile, keyFile string) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile}
	if _, err := r.get(); err != nil {
		return nil, err
	}
	return r, nil
}

// certCheckEvery bounds how often the files are looked at: a handshake
// storm stats them at most this often.
const certCheckEvery = time.Second

func (r *certReloader) get() (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cert != nil && time.Since(r.checked) < certCheckEvery {
		return r.cert, nil
	}
	r.checked = time.Now()
	cm, err1 := modTime(r.certFile)
	km, err2 := modTime(r.keyFile)
	if err := errors.Join(err1, err2); err != nil {
		if r.cert != nil {
			return r.cert, nil // keep serving while a rotation rewrites the files
		}
		return nil, err
	}
	if r.cert != nil && cm.Equal(r.certMod) && km.Equal(r.keyMod) {
		return r.cert, nil
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		if r.cert != nil {
			return r.cert, nil
		}
		return nil, fmt.Errorf("load key pair %s, %s: %w", r.certFile, r.keyFile, err)
	}
	r.cert, r.certMod, r.keyMod = &cert, cm, km
	return r.cert, nil
}

func modTime(path string) (time.Time, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}, err
	}
	return fi.ModTime(), nil
}

// selfCert returns dir's cert.pem and key.pem, first generating a
// self-signed certificate for the URLs' hosts when they are not there.
func selfCert(dir string, urls []string, validity time.Duration) (certFile, keyFile string, err error) {
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if _, err1 := os.Stat(certFile); err1 == nil {
		if _, err2 := os.Stat(keyFile); err2 == nil {
			return certFile, keyFile, nil
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("auto TLS key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return "", "", fmt.Errorf("auto TLS serial: %w", err)
	}
	now := time.Now()
	tmpl := x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"detcd"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			continue
		}
		if ip := net.ParseIP(u.Hostname()); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if u.Hostname() != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, u.Hostname())
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", fmt.Errorf("auto TLS certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", fmt.Errorf("auto TLS key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("auto TLS: %w", err)
	}
	if err := writePEM(keyFile, "EC PRIVATE KEY", keyDER, 0o600); err != nil {
		return "", "", err
	}
	if err := writePEM(certFile, "CERTIFICATE", der, 0o644); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

func writePEM(path, typ string, der []byte, perm os.FileMode) error {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), perm); err != nil {
		return fmt.Errorf("auto TLS: %w", err)
	}
	return nil
}
