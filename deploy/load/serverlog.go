package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"time"
)

// logLine is what serverP99 reads of a request's log line.
type logLine struct {
	Message string    `json:"message"`
	Time    time.Time `json:"time"`
	Latency float64   `json:"latency"` // milliseconds, zerolog's Dur
}

// serverP99 returns the 99th percentile of the latencies pms logged for the
// requests it finished between from and to: the time from the handler
// chain's start to its end, without what the client, the kernel and the
// wait for pms's thread before the handler add. It is 0 when the file holds
// no such lines (the bare Echo handler logs none). pms writes info lines up
// to log.flush_interval late, so the run's last moments may be missing.
func serverP99(file string, from, to time.Time) (time.Duration, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var lat []float64
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		b := s.Bytes()
		if !bytes.Contains(b, []byte(`"message":"request"`)) {
			continue
		}
		var l logLine
		if json.Unmarshal(b, &l) != nil || l.Message != "request" || l.Time.Before(from) || l.Time.After(to) {
			continue
		}
		lat = append(lat, l.Latency)
	}
	if err := s.Err(); err != nil || len(lat) == 0 {
		return 0, err
	}
	slices.Sort(lat)
	return time.Duration(lat[len(lat)*99/100] * float64(time.Millisecond)), nil
}
