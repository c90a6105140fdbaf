// Package redact takes credentials out of URLs and connection strings
// before they are logged or put in an error. It is the one place in pms that
// knows where such strings carry secrets.
package redact

import (
	"net/url"
	"strings"
)

// Mask replaces every secret.
const Mask = "REDACTED"

// URL returns s, a URL or a connection string, with every credential it can
// carry replaced by Mask:
//
//   - the password of a URL's user info (postgres://u:secret@h/db); the
//     user name stays;
//   - the value of every query or fragment parameter whose name says secret
//     (see Sensitive), such as password=, sslpassword=, token=, access_key=
//     or X-Amz-Signature=;
//   - in a key=value connection string as lib/pq and libpq take it
//     (host=h password='s e c r e t'), the value of every such key.
//
// A URL that does not parse is masked whole after its scheme, since it may
// still hold a password. Anything else, such as host:port, comes back as it
// is.
func URL(s string) string {
	switch scheme, _, ok := strings.Cut(s, "://"); {
	case looksLikeDSN(s):
		return redactDSN(s)
	case ok && !validScheme(scheme):
		return Mask
	case ok || strings.ContainsAny(s, "?#@"):
		return redactURL(s)
	}
	return s
}

// redactURL masks the password of a URL's user info and the sensitive
// parameters of its query and fragment. A URL that does not parse is masked
// after its scheme.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if scheme, _, ok := strings.Cut(s, "://"); ok {
			return scheme + "://" + Mask
		}
		return Mask
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), Mask)
	}
	if at := strings.LastIndexByte(u.Opaque, '@'); at >= 0 {
		u.Opaque = Mask + u.Opaque[at:] // user:password@host without "//"
	}
	u.RawQuery = redactParams(u.RawQuery)
	if u.Fragment != "" {
		u.RawFragment = redactParams(u.EscapedFragment())
		u.Fragment, _ = url.PathUnescape(u.RawFragment)
	}
	return u.String()
}

// redactParams masks the values of the sensitive parameters of a raw query
// (or fragment), keeping the order and spelling of the rest.
func redactParams(raw string) string {
	if raw == "" {
		return raw
	}
	parts := strings.Split(raw, "&")
	for i, p := range parts {
		rawName, _, hasValue := strings.Cut(p, "=")
		name, err := url.QueryUnescape(rawName)
		if err != nil {
			name = rawName
		}
		if Sensitive(name) && hasValue {
			parts[i] = rawName + "=" + Mask
		}
	}
	return strings.Join(parts, "&")
}

// sensitiveWords are the parts of a parameter or key name that mark its
// value as a secret, after lower-casing and dropping '-', '_' and '.'.
// Over-matching costs only a masked harmless value.
var sensitiveWords = []string{
	"pass", "pwd", "secret", "token", "key", "sig", "auth", "credential", "session", "hmac", "cookie", "private",
}

// Sensitive reports whether a parameter or key of that name holds a secret:
// its name contains one of pass, pwd, secret, token, key, sig, auth,
// credential, session, hmac, cookie or private, in any case, ignoring '-',
// '_' and '.' (so sslpassword, X-Amz-Signature and access_key all are).
func Sensitive(name string) bool {
	n := strings.ToLower(strings.NewReplacer("-", "", "_", "", ".", "").Replace(name))
	for _, w := range sensitiveWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

func validScheme(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}

// looksLikeDSN reports whether s starts like a key=value connection string:
// a keyword, optional spaces, then '='.
func looksLikeDSN(s string) bool {
	s = strings.TrimLeft(s, " \t\n\r\f\v")
	i := 0
	for i < len(s) && (s[i] == '_' || 'a' <= s[i] && s[i] <= 'z' || 'A' <= s[i] && s[i] <= 'Z' || i > 0 && '0' <= s[i] && s[i] <= '9') {
		i++
	}
	if i == 0 {
		return false
	}
	return strings.HasPrefix(strings.TrimLeft(s[i:], " \t\n\r\f\v"), "=")
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// redactDSN masks the values of sensitive keys in a key=value connection
// string, read as libpq does: values are bare words or single-quoted with
// backslash escapes, and spaces may surround '='. Where the string stops
// making sense, the rest of it is masked.
func redactDSN(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && isSpace(s[j]) {
			j++
		}
		b.WriteString(s[i:j])
		if i = j; i == len(s) {
			break
		}
		k := i
		for k < len(s) && s[k] != '=' && !isSpace(s[k]) {
			k++
		}
		key := s[i:k]
		m := k
		for m < len(s) && isSpace(s[m]) {
			m++
		}
		if m == len(s) || s[m] != '=' {
			b.WriteString(Mask) // not key=value: it may be anything
			break
		}
		m++
		for m < len(s) && isSpace(s[m]) {
			m++
		}
		v, ok := dsnValueEnd(s, m)
		b.WriteString(s[i:m])
		if !ok || Sensitive(key) {
			b.WriteString(Mask)
		} else {
			b.WriteString(s[m:v])
		}
		if !ok {
			break
		}
		i = v
	}
	return b.String()
}

// dsnValueEnd returns where the value starting at s[i] ends, and false for
// an unterminated quoted value.
func dsnValueEnd(s string, i int) (int, bool) {
	if i < len(s) && s[i] == '\'' {
		for i++; i < len(s); i++ {
			switch s[i] {
			case '\\':
				i++
			case '\'':
				return i + 1, true
			}
		}
		return len(s), false
	}
	for ; i < len(s) && !isSpace(s[i]); i++ {
		if s[i] == '\\' {
			i++
		}
	}
	return min(i, len(s)), true
}
