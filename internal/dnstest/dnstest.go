// Package dnstest is a DNS for tests of DNS discovery (the gateway's and
// the server's --discovery-srv): SRV records from a table, hosts that are
// IP addresses resolving to themselves and localhost to 127.0.0.1.
package dnstest

import (
	"context"
	"net"
)

// Table answers SRV queries for "_service._proto.name" from its records;
// it implements tcpproxy.Resolver and server.Resolver.
type Table map[string][]*net.SRV

// LookupSRV returns the records of _service._proto.name, or a not-found
// error.
func (t Table) LookupSRV(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
	key := "_" + service + "._" + proto + "." + name
	if rs, ok := t[key]; ok {
		return key, rs, nil
	}
	return "", nil, &net.DNSError{Err: "no such host", Name: key, IsNotFound: true}
}

// LookupHost resolves localhost and IP addresses; other names are not
// found.
func (Table) LookupHost(_ context.Context, host string) ([]string, error) {
	if host == "localhost" {
		return []string{"127.0.0.1"}, nil
	}
	if net.ParseIP(host) != nil {
		return []string{host}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}
