package product

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/pms-dev/pms/product/correlation"
	"github.com/pms-dev/pms/product/message"
)

// The event types pms announces. A product event carries the product as
// it is after the change; an image event the image and the product's
// version after it.
const (
	EventProductCreated = "product.created"
	EventProductUpdated = "product.updated"
	EventProductDeleted = "product.deleted"
	EventImageReady     = "image.ready"
	EventImageFailed    = "image.failed"
	// EventImagesReady follows the image event that settles a product's
	// last pending image: every image is then ready or failed.
	EventImagesReady = "product.images_ready"
)

// EventTypes lists every event type, in the order above.
var EventTypes = []string{
	EventProductCreated, EventProductUpdated, EventProductDeleted,
	EventImageReady, EventImageFailed, EventImagesReady,
}

// CloudEvents in structured mode: the whole event is the message's JSON
// payload, with EventContentType in its content-type header.
const (
	EventContentType = "application/cloudevents+json"
	// HeaderContentType is the Kafka header the CloudEvents Kafka binding
	// reads the mode from.
	HeaderContentType = "content-type"
	eventSource       = "/pms/products"
)

// Events makes the event messages of product changes, on one topic. The
// zero value makes none: a Service without events announces nothing.
type Events struct{ Topic string }

// On reports whether e makes events.
func (e Events) On() bool { return e.Topic != "" }

// Event is one CloudEvents 1.0 event as pms writes it (structured JSON).
// ProductVersion is the product's version after the change, so a reader
// can order and drop stale events per product; CorrelationID is the
// request id of the change, when it had one.
type Event struct {
	SpecVersion     string          `json:"specversion"`
	ID              uuid.UUID       `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject"` // the product id
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	ProductVersion  int             `json:"productversion"`
	CorrelationID   string          `json:"correlationid,omitempty"`
	Data            json.RawMessage `json:"data"`
}

// EventData is what every event's data holds, the product's id, owner and
// version; product events add the product, image events the image.
type EventData struct {
	ProductID uuid.UUID     `json:"product_id"`
	UserID    uuid.UUID     `json:"user_id"`
	Version   int           `json:"version"`
	Product   *EventProduct `json:"product,omitempty"`
	Image     *EventImage   `json:"image,omitempty"`
}

// EventProduct is a product in an event's data.
type EventProduct struct {
	Name        string       `json:"name"`
	Description string       `json:"description"`
	Price       string       `json:"price"`
	Images      []EventImage `json:"images"`
	CreatedAt   time.Time    `json:"created_at"`
	UpdatedAt   time.Time    `json:"updated_at"`
}

// EventImage is an image in an event's data.
type EventImage struct {
	ID        uuid.UUID      `json:"id"`
	Position  int            `json:"position"`
	SourceURL string         `json:"source_url"`
	Status    string         `json:"status"`
	ErrorCode string         `json:"error_code,omitempty"`
	Variants  []EventVariant `json:"variants,omitempty"`
}

// EventVariant is a compressed copy of an image in an event's data.
type EventVariant struct {
	Name   string `json:"name"`
	URL    string `json:"url"`
	Width  int    `json:"width,omitempty"`
	Height int    `json:"height,omitempty"`
	Bytes  int64  `json:"bytes,omitempty"`
	Format string `json:"format,omitempty"`
}

// eventImage is im as an event shows it.
func eventImage(im Image) EventImage {
	e := EventImage{ID: im.ID, Position: im.Position, SourceURL: im.SourceURL, Status: string(im.Status), ErrorCode: im.ErrorCode}
	for _, v := range im.Variants {
		e.Variants = append(e.Variants, EventVariant(v))
	}
	return e
}

// ProductEvent returns the message of a product event of type typ about p
// as it is after the change.
func (e Events) ProductEvent(ctx context.Context, typ string, p Product) (message.Message, error) {
	d := EventData{ProductID: p.ID, UserID: p.UserID, Version: p.Version}
	if typ != EventProductDeleted {
		ep := &EventProduct{Name: p.Name, Description: p.Description, Price: p.Price.String(),
			Images: make([]EventImage, len(p.Images)), CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt}
		for i, im := range p.Images {
			ep.Images[i] = eventImage(im)
		}
		d.Product = ep
	}
	return e.message(ctx, typ, d)
}

// ImageEvent returns the message of an image event of type typ about im,
// an image of the product id owned by userID, at the product's version.
func (e Events) ImageEvent(ctx context.Context, typ string, id, userID uuid.UUID, version int, im Image) (message.Message, error) {
	ei := eventImage(im)
	d := EventData{ProductID: id, UserID: userID, Version: version}
	if typ != EventImagesReady {
		d.Image = &ei
	}
	return e.message(ctx, typ, d)
}

// message wraps d in a CloudEvent of type typ, keyed by product id so one
// product's events keep their order.
func (e Events) message(ctx context.Context, typ string, d EventData) (message.Message, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return message.Message{}, fmt.Errorf("make event id: %w", err)
	}
	data, err := json.Marshal(d)
	if err != nil {
		return message.Message{}, fmt.Errorf("encode %s event data: %w", typ, err)
	}
	ev := Event{
		SpecVersion: "1.0", ID: id, Source: eventSource, Type: typ, Subject: d.ProductID.String(),
		Time: time.Now().UTC().Truncate(time.Microsecond), DataContentType: "application/json",
		ProductVersion: d.Version, CorrelationID: correlation.ID(ctx), Data: data,
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return message.Message{}, fmt.Errorf("encode %s event: %w", typ, err)
	}
	m := message.New(ctx, e.Topic, d.ProductID.String(), body)
	m.Headers[HeaderContentType] = EventContentType
	return m, nil
}

// DecodeEvent reads the CloudEvent in a message's payload and its data. A
// payload that is no pms event is an error wrapping message.ErrMalformed.
func DecodeEvent(payload []byte) (Event, EventData, error) {
	var ev Event
	if err := json.Unmarshal(payload, &ev); err != nil {
		return Event{}, EventData{}, fmt.Errorf("decode event: %w: %w", message.ErrMalformed, err)
	}
	if ev.SpecVersion != "1.0" || ev.Type == "" || ev.ID == uuid.Nil {
		return Event{}, EventData{}, fmt.Errorf("decode event: %w: not a CloudEvents 1.0 event with a type and an id", message.ErrMalformed)
	}
	var d EventData
	if err := json.Unmarshal(ev.Data, &d); err != nil || d.ProductID == uuid.Nil {
		return Event{}, EventData{}, fmt.Errorf("decode %s event %s data: %w", ev.Type, ev.ID, message.ErrMalformed)
	}
	return ev, d, nil
}
