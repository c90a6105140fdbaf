package imaging

import (
	"net/netip"
	"testing"
)

// The legacy parser is unexported, so it is tested from inside the package.
func TestParseLegacyIPv4(t *testing.T) {
	tests := []struct {
		host    string
		numeric bool
		want    string // "" when host is no legacy IPv4 address
	}{
		{"2130706433", true, "127.0.0.1"},
		{"2852039166", true, "169.254.169.254"},
		{"127.1", true, "127.0.0.1"},
		{"127.0.1", true, "127.0.0.1"},
		{"10.1", true, "10.0.0.1"},
		{"0x7f.1", true, "127.0.0.1"},
		{"0x7f000001", true, "127.0.0.1"},
		{"0X7F000001", true, "127.0.0.1"},
		{"017700000001", true, "127.0.0.1"},
		{"0177.0.0.1", true, "127.0.0.1"},
		{"127.000.000.001", true, "127.0.0.1"},
		{"127.0.0.1.", true, "127.0.0.1"},
		{"0", true, "0.0.0.0"},
		{"0x", true, "0.0.0.0"},
		{"134744072", true, "8.8.8.8"},
		{"4294967295", true, "255.255.255.255"},
		{"4294967296", true, ""},
		{"256.0.0.1", true, ""},
		{"1.2.3.4.5", true, ""},
		{"1..1", true, ""},
		{"09", true, ""},
		{"0x1g", false, ""},
		{"example.com", false, ""},
		{"1.2.3.com", false, ""},
		{"localhost", false, ""},
		{"123.example", false, ""},
		{"", false, ""},
		{".", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			if got := numericHost(tt.host); got != tt.numeric {
				t.Errorf("numericHost(%q) = %v, want %v", tt.host, got, tt.numeric)
			}
			ip, ok := parseLegacyIPv4(tt.host)
			if tt.want == "" {
				if ok {
					t.Errorf("parseLegacyIPv4(%q) = %s, want no address", tt.host, ip)
				}
				return
			}
			if want := netip.MustParseAddr(tt.want); !ok || ip != want {
				t.Errorf("parseLegacyIPv4(%q) = %s, %v, want %s, true", tt.host, ip, ok, want)
			}
		})
	}
}
