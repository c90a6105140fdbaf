package vips

import "context"

// StripWebPMetadata exposes stripWebPMetadata to the external tests.
var StripWebPMetadata = stripWebPMetadata

// HoldSlot takes a libvips slot, as a running Compress would, and returns
// the function that gives it back.
func (c *Compressor) HoldSlot(ctx context.Context) (func(), error) {
	if err := c.acquire(ctx); err != nil {
		return nil, err
	}
	return c.release, nil
}
