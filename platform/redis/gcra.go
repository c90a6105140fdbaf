package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// takeScript takes up to ARGV[3] tokens from the GCRA budget in KEYS[1]
// (ARGV[1] at once, one back every ARGV[2] seconds), as many as there are,
// or gives tokens back when ARGV[3] is negative. The key holds the
// budget's theoretical arrival time (TAT), in seconds since 2017-01-01 UTC,
// as redis_rate (which pms used before) keeps it, so processes of either
// version share a caller's budget during a rolling upgrade.
//
// It answers {taken, remaining, retry after, reset after}: taken is 0 when
// not one token was left, and retry after says when one is; reset after
// says when the whole budget is back. Lua numbers come back as integers,
// so the times are strings.
var takeScript = goredis.NewScript(`
redis.replicate_commands()
local burst, interval, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call("TIME")
local now = (t[1] - 1483228800) + t[2] / 1000000
local tat = tonumber(redis.call("GET", KEYS[1]) or 0)
if tat < now then tat = now end
local free = math.floor(burst - (tat - now) / interval + 1e-9)
local take = want
if want > 0 then
  if free < 1 then
    return {0, 0, tostring(tat - now - (burst - 1) * interval), tostring(tat - now)}
  end
  if take > free then take = free end
end
local new = tat + take * interval
if new > now then
  redis.call("SET", KEYS[1], new, "EX", math.ceil(new - now))
else
  redis.call("DEL", KEYS[1])
  new = now
end
return {take, math.min(free - take, burst), "-1", tostring(new - now)}
`)

// budget is a GCRA budget: burst tokens at once, one back every interval.
type budget struct {
	burst int
	// The script's first two arguments, formatted once.
	burstArg, intervalArg string
}

func newBudget(rate, burst int, period time.Duration) budget {
	interval := period.Seconds() / float64(rate)
	return budget{burst: burst, burstArg: strconv.Itoa(burst), intervalArg: strconv.FormatFloat(interval, 'g', -1, 64)}
}

// args are takeScript's arguments for taking up to n tokens.
func (b budget) args(n int) []any { return []any{b.burstArg, b.intervalArg, n} }

// taken is takeScript's answer.
type taken struct {
	n          int // tokens taken: 0 when refused
	remaining  int // left in the budget
	retryAfter time.Duration
	resetAfter time.Duration
}

func parseTaken(v any) (taken, error) {
	vs, ok := v.([]any)
	if !ok || len(vs) != 4 {
		return taken{}, fmt.Errorf("rate limit script answered %v", v)
	}
	n, ok1 := vs[0].(int64)
	remaining, ok2 := vs[1].(int64)
	retry, err1 := seconds(vs[2])
	reset, err2 := seconds(vs[3])
	if !ok1 || !ok2 || err1 != nil || err2 != nil {
		return taken{}, fmt.Errorf("rate limit script answered %v", v)
	}
	return taken{n: int(n), remaining: int(remaining), retryAfter: max(retry, 0), resetAfter: max(reset, 0)}, nil
}

func seconds(v any) (time.Duration, error) {
	s, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("%v is not a string", v)
	}
	f, err := strconv.ParseFloat(s, 64)
	return time.Duration(f * float64(time.Second)), err
}

// takeTokens takes up to n tokens of b in key k, in one round trip.
func (c *Client) takeTokens(ctx context.Context, k string, b budget, n int) (taken, error) {
	var t taken
	err := c.do(ctx, "redis rate limit", func(ctx context.Context) error {
		v, err := takeScript.Run(ctx, c.rdb, []string{k}, b.args(n)...).Result()
		if err != nil {
			return err
		}
		t, err = parseTaken(v)
		return err
	})
	return t, err
}

// tokenOrder asks for up to n tokens of b in key k.
type tokenOrder struct {
	key string
	b   budget
	n   int
}

// takeTokensPipelined takes the tokens of every order in one round trip:
// the answer of each, in order, or an error for all.
func (c *Client) takeTokensPipelined(ctx context.Context, orders []tokenOrder) ([]taken, error) {
	out := make([]taken, len(orders))
	err := c.do(ctx, "redis rate limit", func(ctx context.Context) error {
		cmds, err := c.pipeTakes(ctx, orders)
		if goredis.HasErrorPrefix(err, "NOSCRIPT") { // Redis restarted or flushed its scripts
			if err = takeScript.Load(ctx, c.rdb).Err(); err == nil {
				cmds, err = c.pipeTakes(ctx, orders)
			}
		}
		if err != nil {
			return err
		}
		for i, cmd := range cmds {
			if out[i], err = parseTaken(cmd.Val()); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

func (c *Client) pipeTakes(ctx context.Context, orders []tokenOrder) ([]*goredis.Cmd, error) {
	cmds := make([]*goredis.Cmd, len(orders))
	_, err := c.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, o := range orders {
			cmds[i] = takeScript.EvalSha(ctx, p, []string{o.key}, o.b.args(o.n)...)
		}
		return nil
	})
	return cmds, err
}
