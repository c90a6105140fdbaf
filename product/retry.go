package product

import (
	"context"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/product/account"
	"github.com/pms-dev/pms/product/message"
)

// RetryImage gives the failed image at position a new round of attempts:
// in one transaction (Store.Update) the image is replaced by a pending
// image with the same source URL and a new id, the product's version goes
// up, and the new image's task goes to the outbox. Tasks of the old image
// still on their way are then stale and do nothing. Only the owner (or an
// admin) may retry; others, a missing product and a position without an
// image get ErrNotFound, and an image that is not failed ErrImageNotFailed.
func (s *Service) RetryImage(ctx context.Context, c account.Caller, id uuid.UUID, position int) (Product, error) {
	return s.store.Update(ctx, id, func(p *Product) ([]message.Message, error) {
		if !canChange(c, *p) {
			return nil, ErrNotFound
		}
		i := imageAt(p.Images, position)
		if i < 0 {
			return nil, ErrNotFound
		}
		if p.Images[i].Status != ImageFailed {
			return nil, ErrImageNotFailed
		}
		now := s.timestamp()
		old := p.Images[i]
		p.Images[i] = Image{ID: mustV7(), Position: old.Position, SourceURL: old.SourceURL, Status: ImagePending, UpdatedAt: now}
		p.Version++
		p.UpdatedAt = now
		return s.imageTasks(ctx, *p, p.Images[i:i+1])
	})
}

func imageAt(images []Image, position int) int {
	for i, im := range images {
		if im.Position == position {
			return i
		}
	}
	return -1
}
