package product

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/product/message"
)

// ImageTasks makes the message that asks for a new image to be processed.
// The Service decides which images need one (every image a create or an
// update adds) and hands the messages to the Store with the change, so the
// image and its task are written together or not at all; what a task says
// is up to the image pipeline (imaging.TaskMessages).
type ImageTasks interface {
	ImageTask(ctx context.Context, productID, imageID uuid.UUID, sourceURL string, requestedAt time.Time) (message.Message, error)
}

// imageTasks returns a task message for each of p's images in added, in
// order, carrying the correlation id in ctx.
func (s *Service) imageTasks(ctx context.Context, p Product, added []Image) ([]message.Message, error) {
	var msgs []message.Message
	for _, im := range added {
		m, err := s.tasks.ImageTask(ctx, p.ID, im.ID, im.SourceURL, im.UpdatedAt)
		if err != nil {
			return nil, fmt.Errorf("make task for image %d: %w", im.Position, err)
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// addedImages returns the images in after whose IDs are not in before.
func addedImages(before, after []Image) []Image {
	had := make(map[uuid.UUID]bool, len(before))
	for _, im := range before {
		had[im.ID] = true
	}
	var added []Image
	for _, im := range after {
		if !had[im.ID] {
			added = append(added, im)
		}
	}
	return added
}
