package api

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ClientResolver names the client of a request: the connection's remote IP,
// or, when that is a trusted proxy, the nearest untrusted X-Forwarded-For hop.
// Headers from anyone else are ignored, so clients cannot pick their identity.
type ClientResolver struct {
	trusted []netip.Prefix
}

// NewClientResolver parses trusted proxies as CIDRs or single addresses.
func NewClientResolver(trusted []string) (*ClientResolver, error) {
	cr := &ClientResolver{}
	for _, t := range trusted {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		if !strings.Contains(t, "/") {
			addr, err := netip.ParseAddr(t)
			if err != nil {
				return nil, err
			}
			cr.trusted = append(cr.trusted, netip.PrefixFrom(addr, addr.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(t)
		if err != nil {
			return nil, err
		}
		cr.trusted = append(cr.trusted, p.Masked())
	}
	return cr, nil
}

func (cr *ClientResolver) isTrusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range cr.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Resolve returns the client host and, when it is the direct peer, its port.
func (cr *ClientResolver) Resolve(r *http.Request) (host, port string) {
	host, port, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host, port = r.RemoteAddr, ""
	}
	if len(cr.trusted) == 0 { // no address to parse, then
		return host, port
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !cr.isTrusted(peer) {
		return host, port
	}
	hops := r.Header.Values("X-Forwarded-For")
	// Walk from the nearest hop outwards; the first untrusted one is the client.
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				// A garbled hop ends what can be trusted: count the last good proxy.
				return host, ""
			}
			if !cr.isTrusted(a) {
				return a.Unmap().String(), ""
			}
			host = a.Unmap().String()
		}
	}
	return host, ""
}
