package redis

import "time"

// Failures returns how many Redis calls have failed, timed out included;
// calls the open breaker skipped do not count.
func (c *Client) Failures() int64 { return c.failures.Load() }

// CurrentEpoch returns the key epoch the cache goes by, if it read one
// within the last epochTrust.
func (kc *KeyCache) CurrentEpoch() (int64, bool) { return kc.currentEpoch(time.Now()) }
