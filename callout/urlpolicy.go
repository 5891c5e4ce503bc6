package callout

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/tasker-runner/tasker-runner/contracts"
)

// ErrorTypeURLRefused fails a step whose handler URL the [URLPolicy]
// refused when connecting. It is permanent: the same address is refused on
// every attempt until the policy or the endpoint changes.
const ErrorTypeURLRefused = "handler_url_refused"

// URLPolicyKey names the configuration table of the policy in messages, so
// an operator knows where to change it.
const URLPolicyKey = "worker.callout.url_policy"

// URLPolicy decides which handler URLs the runner may call, so that whoever
// can register a handler cannot make the runner reach addresses that only
// it can reach (server-side request forgery): cloud metadata services,
// link-local and loopback addresses.
//
// By default it refuses, by literal address and by the address actually
// dialled:
//   - unspecified addresses (0.0.0.0/8, ::), which reach the host itself;
//   - loopback (127.0.0.0/8, ::1, and the names localhost and *.localhost)
//     unless AllowLoopback;
//   - cloud metadata addresses (169.254.169.254, fd00:ec2::254,
//     100.100.100.200, 168.63.129.16, metadata.google.internal, ...);
//   - link-local (169.254.0.0/16, fe80::/10);
//   - multicast and the limited broadcast address;
//   - the deprecated IPv4-compatible IPv6 form (::a.b.c.d).
//
// IPv4-mapped IPv6 (::ffff:a.b.c.d), NAT64 (64:ff9b::/96) and 6to4
// (2002::/16) addresses are judged by the IPv4 address they carry, and
// hosts written as legacy IPv4 numbers (2852039166, 0xA9FEA9FE,
// 0251.0376.0251.0376, 169.254.43518) are read the way inet_aton reads them
// and judged as that address. Private ranges (10/8, 172.16/12, 192.168/16,
// fc00::/7, 100.64/10) are allowed: handlers live on private networks.
//
// AllowHosts and AllowCIDRs override every denial. A nil *URLPolicy allows
// everything: the library default is no policy, while serve's default
// configuration is strict.
type URLPolicy struct {
	// AllowLoopback allows loopback addresses and localhost (dev, tests,
	// sidecars).
	AllowLoopback bool
	// AllowHosts are host names (or literal addresses) allowed whatever
	// they resolve to; "*.example.internal" allows every subdomain. A URL
	// whose host is listed is neither checked at registration nor when
	// dialled.
	AllowHosts []string
	// AllowCIDRs are address ranges allowed even where a rule denies them,
	// e.g. 169.254.169.254/32 for a handler that really is there.
	AllowCIDRs []netip.Prefix
	// AllowedSchemes are the URL schemes allowed; empty means http and
	// https. Those are the only schemes handlers are called with (Connect
	// and gRPC endpoints use http:// and https:// URLs too), so the list
	// can only narrow them, e.g. to https alone.
	AllowedSchemes []string

	proxies sync.Map // "host:port" of proxies from the environment -> true
}

// URLRefusedError is the error of a URL or address the [URLPolicy] refused.
type URLRefusedError struct {
	// Host is the host as written in the URL, or the address dialled.
	Host string
	// Addr is the address judged when it differs from Host (a decimal
	// IPv4 host's dotted form, an IPv4-mapped address's IPv4 address).
	Addr string
	// Rule says what the address is ("a link-local address").
	Rule string
	// Fix names the setting that would allow it.
	Fix string
}

func (e *URLRefusedError) Error() string {
	host := e.Host
	if e.Addr != "" && e.Addr != e.Host {
		host += " (" + e.Addr + ")"
	}
	msg := fmt.Sprintf("%s is %s, refused by the handler URL policy (%s)", host, e.Rule, URLPolicyKey)
	if e.Fix != "" {
		msg += "; allow it with " + e.Fix
	}
	return msg
}

// Metadata service addresses of the big clouds. Most are link-local too;
// they are listed so that the message names them, and so that allowing
// link-local ranges with allow_cidrs does not allow them by accident.
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"), // AWS, GCP, Azure, OCI, DigitalOcean, OpenStack
	netip.MustParseAddr("169.254.170.2"),   // AWS ECS task metadata
	netip.MustParseAddr("169.254.170.23"),  // AWS EKS pod identity
	netip.MustParseAddr("fd00:ec2::254"),   // AWS IMDS over IPv6
	netip.MustParseAddr("fd00:ec2::23"),    // AWS EKS pod identity over IPv6
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
	netip.MustParseAddr("168.63.129.16"),   // Azure wire server
}

// metadataHosts are names of metadata services.
var metadataHosts = []string{"metadata.google.internal", "metadata.goog", "instance-data.ec2.internal"}

var (
	thisNetwork = netip.MustParsePrefix("0.0.0.0/8")
	ipv4Compat  = netip.MustParsePrefix("::/96")
	nat64       = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour   = netip.MustParsePrefix("2002::/16")
	broadcast   = netip.MustParseAddr("255.255.255.255")
)

func (p *URLPolicy) schemes() []string {
	if len(p.AllowedSchemes) == 0 {
		return []string{"http", "https"}
	}
	return p.AllowedSchemes
}

// Check judges a handler URL before it is registered: its scheme, and its
// host when the host is an address (in any spelling) or a known name
// (localhost, metadata services). Other names are not resolved here: what
// they resolve to can change, so the dialler checks the address each
// connection actually uses (see [TransportOptions.URLPolicy]). A nil
// policy allows every URL. The error is a [*URLRefusedError] naming the
// rule, or says why the URL cannot be read.
func (p *URLPolicy) Check(rawURL string) error {
	if p == nil {
		return nil
	}
	u, err := url.Parse(strings.ReplaceAll(rawURL, CallablePlaceholder, "callable"))
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL, which may hold a secret
		}
		return fmt.Errorf("handler URL is not a valid URL: %v", err)
	}
	scheme := strings.ToLower(u.Scheme)
	if !slices.Contains(p.schemes(), scheme) {
		if scheme == "" {
			scheme = "(none)"
		}
		e := &URLRefusedError{Host: "scheme " + strconv.Quote(scheme), Rule: "not one of " + strings.Join(p.schemes(), ", ")}
		if scheme == "http" || scheme == "https" {
			e.Fix = "allowed_schemes"
		}
		return e
	}
	return p.CheckHost(u.Hostname())
}

// CheckHost judges a URL's host (without port or brackets) as [URLPolicy.Check]
// does.
func (p *URLPolicy) CheckHost(host string) error {
	if p == nil || p.hostAllowed(host) {
		return nil
	}
	if host == "" {
		return &URLRefusedError{Host: `""`, Rule: "an empty host"}
	}
	if addr, ok := parseHostAddr(host); ok {
		return p.checkAddr(host, addr)
	}
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	for i := 0; i < len(name); i++ {
		if c := name[i]; c >= 0x80 || c < 0x20 || c == '%' {
			return &URLRefusedError{Host: strconv.Quote(host), Rule: "not an ASCII host name (write it in punycode)", Fix: "allow_hosts"}
		}
	}
	if last := name[strings.LastIndexByte(name, '.')+1:]; last != "" && strings.Trim(last, "0123456789") == "" ||
		strings.HasPrefix(last, "0x") {
		// A last label of digits makes it an IPv4 address to a URL parser,
		// and it did not parse as one: refuse rather than guess.
		return &URLRefusedError{Host: host, Rule: "neither a valid IPv4 address nor a host name", Fix: "allow_hosts"}
	}
	if (name == "localhost" || strings.HasSuffix(name, ".localhost")) && !p.AllowLoopback {
		return &URLRefusedError{Host: host, Rule: "a loopback host name", Fix: "allow_loopback"}
	}
	if slices.Contains(metadataHosts, name) {
		return &URLRefusedError{Host: host, Rule: "a cloud metadata service", Fix: "allow_hosts"}
	}
	return nil
}

// hostAllowed reports whether host is in AllowHosts.
func (p *URLPolicy) hostAllowed(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if h == "" {
		return false
	}
	for _, a := range p.AllowHosts {
		a = strings.TrimSuffix(strings.ToLower(strings.Trim(a, "[]")), ".")
		if suffix, ok := strings.CutPrefix(a, "*."); ok {
			if strings.HasSuffix(h, "."+suffix) {
				return true
			}
		} else if h == a {
			return true
		}
	}
	return false
}

// CheckAddr judges an address the runner is about to connect to.
func (p *URLPolicy) CheckAddr(addr netip.Addr) error {
	if p == nil {
		return nil
	}
	return p.checkAddr(addr.String(), addr)
}

func (p *URLPolicy) checkAddr(host string, addr netip.Addr) error {
	addr = addr.WithZone("")
	shown := addr.String()
	for _, pfx := range p.AllowCIDRs {
		if pfx.Contains(addr) || addr.Is4In6() && pfx.Contains(addr.Unmap()) {
			return nil
		}
	}
	judged := addr.Unmap()
	if judged.Is6() {
		b := judged.As16()
		switch {
		case nat64.Contains(judged):
			judged = netip.AddrFrom4([4]byte(b[12:16]))
		case sixToFour.Contains(judged):
			judged = netip.AddrFrom4([4]byte(b[2:6]))
		case ipv4Compat.Contains(judged) && !judged.IsUnspecified() && !judged.IsLoopback():
			return &URLRefusedError{Host: host, Addr: shown, Rule: "an IPv4-compatible IPv6 address (deprecated; write the IPv4 address)", Fix: "allow_cidrs"}
		}
	}
	if judged != addr {
		shown = judged.String()
		for _, pfx := range p.AllowCIDRs {
			if pfx.Contains(judged) {
				return nil
			}
		}
	}
	refuse := func(rule, fix string) error {
		return &URLRefusedError{Host: host, Addr: shown, Rule: rule, Fix: fix}
	}
	switch {
	case judged.IsUnspecified() || judged.Is4() && thisNetwork.Contains(judged):
		return refuse("an unspecified address (it reaches this host)", "allow_cidrs")
	case judged.IsLoopback():
		if p.AllowLoopback {
			return nil
		}
		return refuse("a loopback address", "allow_loopback or allow_cidrs")
	case slices.Contains(metadataAddrs, judged):
		return refuse("a cloud metadata address", "allow_cidrs")
	case judged.IsLinkLocalUnicast():
		return refuse("a link-local address", "allow_cidrs")
	case judged.IsMulticast() || judged == broadcast:
		return refuse("a multicast or broadcast address", "allow_cidrs")
	}
	return nil
}

// parseHostAddr reads a URL host as an IP address: IPv6 (brackets already
// removed, zone allowed), dotted IPv4, or a legacy IPv4 number as inet_aton
// reads it (1 to 4 parts, each decimal, octal with a leading 0, or hex with
// 0x), which C resolvers and some proxies still accept.
func parseHostAddr(host string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(host); err == nil {
		return a, true
	}
	h := strings.TrimSuffix(host, ".")
	parts := strings.Split(h, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	vals := make([]uint64, len(parts))
	for i, s := range parts {
		if s == "" {
			return netip.Addr{}, false
		}
		base := 10
		switch {
		case len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X"):
			base, s = 16, s[2:]
		case len(s) > 1 && s[0] == '0':
			base, s = 8, s[1:]
		}
		v, err := strconv.ParseUint(s, base, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		vals[i] = v
	}
	// The last part fills the remaining bytes; the others are one byte each.
	var n uint64
	for i, v := range vals[:len(vals)-1] {
		if v > 0xff {
			return netip.Addr{}, false
		}
		n |= v << (8 * (3 - i))
	}
	last := vals[len(vals)-1]
	if last >= 1<<(8*(5-len(vals))) {
		return netip.Addr{}, false
	}
	n |= last
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}

// control is a [net.Dialer] Control function that refuses addresses the
// policy denies: it sees the address each connection really uses, after
// name resolution, so a name that resolves (or rebinds) to a denied
// address cannot pass.
func (p *URLPolicy) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &URLRefusedError{Host: address, Rule: "not an address the policy can judge"}
	}
	return p.CheckAddr(ap.Addr())
}

// dialContext wraps d so that every connection is judged by the policy,
// except to hosts in AllowHosts and to the proxies the environment names
// (chosen by the operator; the target behind them is judged when the proxy
// is chosen, see proxy).
func (p *URLPolicy) dialContext(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	checked := *d
	checked.Control = p.control
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(addr)
		if _, isProxy := p.proxies.Load(addr); isProxy || p.hostAllowed(host) {
			return d.DialContext(ctx, network, addr)
		}
		return checked.DialContext(ctx, network, addr)
	}
}

// proxy wraps a transport's Proxy function. A request that goes through a
// proxy connects to the proxy, not to the handler, so the dialler cannot
// judge the handler's address: here the URL's host is judged instead, and
// a host name is resolved and refused when any of its addresses is denied.
// The proxy resolves the name again, so a name that rebinds between the two
// lookups is not caught: restrict what the proxy itself may reach.
func (p *URLPolicy) proxy(next func(*http.Request) (*url.URL, error), resolver *net.Resolver) func(*http.Request) (*url.URL, error) {
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	return func(req *http.Request) (*url.URL, error) {
		pu, err := next(req)
		if err != nil || pu == nil {
			return pu, err
		}
		host := req.URL.Hostname()
		if err := p.CheckHost(host); err != nil {
			return nil, err
		}
		if _, isAddr := parseHostAddr(host); !isAddr && !p.hostAllowed(host) {
			addrs, lerr := resolver.LookupNetIP(req.Context(), "ip", host)
			if lerr == nil {
				for _, a := range addrs {
					if err := p.checkAddr(host, a); err != nil {
						return nil, err
					}
				}
			}
			// A name we cannot resolve is left to the proxy to fail.
		}
		port := pu.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443", "socks5": "1080", "socks5h": "1080"}[pu.Scheme]
		}
		p.proxies.Store(net.JoinHostPort(pu.Hostname(), port), true)
		return pu, nil
	}
}

// urlRefused is the step result of a call the policy refused.
func urlRefused(endpoint string, e *URLRefusedError) contracts.StepResult {
	return contracts.Failure(ErrorTypeURLRefused, fmt.Sprintf("not calling %s: %v", endpoint, e), false)
}
