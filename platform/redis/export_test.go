package redis

// Failures returns how many Redis calls have failed, timed out included;
// calls the open breaker skipped do not count.
func (c *Client) Failures() int64 { return c.failures.Load() }
