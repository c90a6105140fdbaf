package product

import (
	"encoding/json"
	"time"
)

// SetClock makes s read the time from now, so tests can say what it is.
func SetClock(s *Service, now func() time.Time) { s.now = now }

// CursorJSON returns the body of c's token, and what json.Marshal made of
// it before the body was written by hand.
func CursorJSON(c Cursor, filter uint32) (body, reference []byte) {
	c.filter = filter
	reference, _ = json.Marshal(cursorJSON{c.CreatedAt, int64(c.Price), c.Name, c.ID, c.filter})
	return c.appendJSON(nil), reference
}
