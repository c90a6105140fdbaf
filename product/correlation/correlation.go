// Package correlation carries the id that ties the work a request causes
// to that request: the HTTP API puts it in the request's context, messages
// made under that context carry it in their Header, and the consumer that
// receives them puts it back into the context of their handler. It imports
// nothing of pms, so every package may use it.
package correlation

import "context"

// Header is the message header that carries the correlation id.
const Header = "request_id"

type key struct{}

// WithID returns a context carrying the correlation id.
func WithID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, key{}, id)
}

// ID returns the correlation id in ctx, or "".
func ID(ctx context.Context) string {
	id, _ := ctx.Value(key{}).(string)
	return id
}
