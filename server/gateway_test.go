package server

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// gatewayPost posts a JSON body to the member's gateway and returns the
// status and body.
func gatewayPost(t *testing.T, addr, path, body, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestGatewayAuth: the JSON gateway takes a token from Authorization, as
// etcd's does, and answers errors with the HTTP status of their code.
func TestGatewayAuth(t *testing.T) {
	s, cli := testServer(t, t.TempDir(), func(c *Config) { c.BcryptCost = 4 })
	enableAuth(t, cli)
	addr := s.Addrs()[0]
	put := `{"key":"` + b64("/app/x") + `","value":"` + b64("1") + `"}`
	if code, body := gatewayPost(t, addr, "/v3/kv/put", put, ""); code != http.StatusBadRequest || !strings.Contains(body, "user name is empty") {
		t.Fatalf("put without a token: %d %s", code, body)
	}
	code, body := gatewayPost(t, addr, "/v3/auth/authenticate", `{"name":"app","password":"apppw"}`, "")
	var auth struct{ Token string }
	if code != http.StatusOK || json.Unmarshal([]byte(body), &auth) != nil || auth.Token == "" {
		t.Fatalf("authenticate: %d %s", code, body)
	}
	if code, body := gatewayPost(t, addr, "/v3/kv/put", put, auth.Token); code != http.StatusOK {
		t.Fatalf("put with a token: %d %s", code, body)
	}
	other := `{"key":"` + b64("/other") + `","value":"` + b64("1") + `"}`
	if code, body := gatewayPost(t, addr, "/v3/kv/put", other, auth.Token); code != http.StatusForbidden {
		t.Fatalf("put outside the user's keys: %d %s", code, body)
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// TestCORS: etcd's CORS headers for an allowed origin, a preflight
// answered, nothing for another origin.
func TestCORS(t *testing.T) {
	s, _ := testServer(t, t.TempDir(), func(c *Config) { c.CORS = []string{"https://ui.example"} })
	hc := &http.Client{Timeout: 5 * time.Second}
	for _, tt := range []struct {
		method, origin, want string
	}{
		{http.MethodOptions, "https://ui.example", "https://ui.example"},
		{http.MethodGet, "https://ui.example", "https://ui.example"},
		{http.MethodGet, "https://evil.example", ""},
	} {
		req, _ := http.NewRequest(tt.method, "http://"+s.Addrs()[0]+"/health", nil)
		req.Header.Set("Origin", tt.origin)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tt.want || resp.StatusCode != http.StatusOK {
			t.Errorf("%s from %s: %d, allow-origin %q, want %q", tt.method, tt.origin, resp.StatusCode, got, tt.want)
		}
	}
}

// TestGatewayDisabled: --enable-grpc-gateway=false leaves /v3/ unserved.
func TestGatewayDisabled(t *testing.T) {
	s, _ := testServer(t, t.TempDir(), func(c *Config) { c.EnableGRPCGateway = false })
	if code, body := gatewayPost(t, s.Addrs()[0], "/v3/kv/range", `{"key":"`+b64("k")+`"}`, ""); code != http.StatusNotFound {
		t.Fatalf("gateway request with the gateway off: %d %s", code, body)
	}
}
