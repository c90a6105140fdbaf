package account

import "time"

// SetClock makes s read the time from now, so tests can say what it is.
func SetClock(s *Service, now func() time.Time) { s.now = now }

var IsBase64URL = isBase64URL
