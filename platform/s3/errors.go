package s3

import (
	"errors"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"

	"github.com/pms-dev/pms/imaging"
)

// Failure codes of the errors Upload and Check return (as *imaging.Failure,
// never permanent).
const (
	// CodeUnavailable: S3 could not be reached, timed out, throttled or
	// failed (5xx). Retrying later is likely to work.
	CodeUnavailable = "storage_unavailable"
	// CodeRejected: S3 answered with a client error such as AccessDenied,
	// NoSuchBucket or a redirect to another region: the deployment is
	// misconfigured. It is still transient, so the task is retried and then
	// dead-lettered, where someone will see it, instead of the image being
	// marked failed for good when it was never at fault.
	CodeRejected = "storage_rejected"
)

// classify wraps an SDK error as a transient imaging failure whose code says
// whether S3 was unavailable or refused the request.
func classify(err error) error {
	var resp interface{ HTTPStatusCode() int }
	if !errors.As(err, &resp) || resp.HTTPStatusCode() == 0 {
		// No answer at all: network error, timeout, cancelled context or
		// unobtainable credentials.
		return imaging.Transient(CodeUnavailable, err)
	}
	status := resp.HTTPStatusCode()
	if status >= 500 || status == http.StatusTooManyRequests || status == http.StatusRequestTimeout {
		return imaging.Transient(CodeUnavailable, err)
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		code := api.ErrorCode()
		_, throttled := retry.DefaultThrottleErrorCodes[code]
		_, timedOut := retry.DefaultRetryableErrorCodes[code]
		if throttled || timedOut {
			return imaging.Transient(CodeUnavailable, err)
		}
	}
	return imaging.Transient(CodeRejected, err)
}
