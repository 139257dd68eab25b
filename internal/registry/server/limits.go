package server

import (
	"errors"
	"io"
	"net/http"
	"time"
)

// Request bodies are read under an idle deadline: an upload that stops
// sending (a client gone quiet, a slow-drip attack, a Content-Length
// larger than what comes) ends with an error after BodyTimeout instead
// of holding its connection, goroutine and session lock forever. The
// http.Server's ReadTimeout cannot do this: it bounds the whole body,
// and a layer of many gigabytes may take long to arrive.
const defaultBodyTimeout = time.Minute

// idleBody renews the connection's read deadline before every read and
// clears it once the body has been read to its end, so that a handler
// busy after the body (hashing a large blob) is not cut off. A body left
// unread keeps a deadline: the server discards what remains of it, and
// a client that stalls then must not hold the connection either.
type idleBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration
	eof     bool
}

func (b *idleBody) Read(p []byte) (int, error) {
	if b.eof {
		return 0, io.EOF
	}
	b.rc.SetReadDeadline(time.Now().Add(b.timeout))
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.eof = true
		b.rc.SetReadDeadline(time.Time{})
	}
	var to interface{ Timeout() bool }
	if errors.As(err, &to) && to.Timeout() {
		err = errBodyIdle
	}
	return n, err
}

// finish runs when the handler is done.
func (b *idleBody) finish() {
	if !b.eof {
		b.rc.SetReadDeadline(time.Now().Add(b.timeout))
	}
}

var errBodyIdle = errors.New("the client sent nothing for too long")

// withBodyTimeout returns a shallow copy of r reading its body under the
// idle deadline, and a func to call when the handler is done. The
// server's own request keeps its body: net/http decides by its type how
// much of an unread body to discard before the response.
func (s *Server) withBodyTimeout(w http.ResponseWriter, r *http.Request) (*http.Request, func()) {
	if r.Body == nil || r.Body == http.NoBody {
		return r, func() {}
	}
	b := &idleBody{ReadCloser: r.Body, rc: http.NewResponseController(w), timeout: s.bodyTimeout()}
	r2 := r.WithContext(r.Context())
	r2.Body = b
	return r2, b.finish
}

func (s *Server) bodyTimeout() time.Duration {
	if s.cfg.BodyTimeout > 0 {
		return s.cfg.BodyTimeout
	}
	return defaultBodyTimeout
}
