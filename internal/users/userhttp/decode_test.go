package userhttp

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/inarious/inarious/internal/jsonbody"
	"github.com/inarious/inarious/internal/users"
)

// referenceDecode is decode as it was before its fast paths: the body
// decoded by encoding/json's stream decoder only. decode must answer every
// body as it does.
func referenceDecode(w http.ResponseWriter, r *http.Request, maxBody int64, v any) bool {
	return jsonbody.Decode(w, r, maxBody, v)
}

// failingBody yields its bytes, then fails.
type failingBody struct{ r io.Reader }

var errConnReset = errors.New("connection reset")

func (f failingBody) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		err = errConnReset
	}
	return n, err
}

// checkDecodeLikeReference decodes body into a NewUser and a patchBody with
// decode and with referenceDecode, and fails on any difference in result,
// status, response or decoded value.
func checkDecodeLikeReference(t *testing.T, body []byte, maxBody int64, fail bool) {
	t.Helper()
	h := &handler{maxBody: maxBody}
	for _, target := range []func() any{
		func() any { return &users.NewUser{} },
		func() any { return &patchBody{} },
	} {
		run := func(decodeFn func(http.ResponseWriter, *http.Request, any) bool) (bool, *httptest.ResponseRecorder, any) {
			var rd io.Reader = bytes.NewReader(body)
			if fail {
				rd = failingBody{rd}
			}
			req := httptest.NewRequest(http.MethodPost, "/users", rd)
			req.Header.Set("Content-Type", mediaJSON)
			rec := httptest.NewRecorder()
			v := target()
			return decodeFn(rec, req, v), rec, v
		}
		gotOK, got, gotV := run(func(w http.ResponseWriter, r *http.Request, v any) bool { return h.decode(w, r, v, mediaJSON) })
		wantOK, want, wantV := run(func(w http.ResponseWriter, r *http.Request, v any) bool {
			return referenceDecode(w, r, maxBody, v)
		})
		if gotOK != wantOK || got.Code != want.Code || got.Body.String() != want.Body.String() ||
			(wantOK && !reflect.DeepEqual(gotV, wantV)) {
			t.Fatalf("body %q (max %d, failing %v) into %T:\n got %v %d %s %+v\nwant %v %d %s %+v",
				body, maxBody, fail, gotV, gotOK, got.Code, got.Body, gotV, wantOK, want.Code, want.Body, wantV)
		}
	}
}

var decodeSeeds = []string{
	``, ` `, `{}`, ` { } `, `null`, `[]`, `1`, `"s"`, `123abc`, `{"a":1}}`,
	`{"name":"Ann","email":"ann@example.com"}`,
	" \t\r\n{\"name\" : \"Ann\" ,\n \"email\":\"ann@example.com\" }\n",
	`{"name":"Ann","email":"ann@example.com"}{}`,
	`{"name":"Ann","email":"ann@example.com"} x`,
	`{"name":"Ann","name":"Eve","email":"eve@example.com"}`,
	`{"NAME":"Caps","Email":"caps@example.com"}`,
	`{"name":"Ann","email":"ann@example.com","x":1}`,
	`{"name":null,"email":"n@example.com"}`,
	`{"name":1,"email":true}`,
	`{"name":"a\"b","email":"q@example.com"}`,
	`{"name":"\u0041","email":"\ud800"}`,
	"{\"name\":\"\xff\",\"email\":\"bad@example.com\"}",
	`{"name":"Ann","email":"ann@example.com"`,
	`{"name":"Ann",}`,
	`{"name":{"nested":1}}`,
	`{"name":"` + strings.Repeat("a", 100) + `"}`,
	`{"name":"a"}` + strings.Repeat(" ", 100),
	`{"name":"a"} {"b":2}` + strings.Repeat("x", 100),
}

func TestDecodeAnswersAsEncodingJSON(t *testing.T) {
	for _, body := range decodeSeeds {
		for _, maxBody := range []int64{1, 8, 14, 30, 64, DefaultMaxBodyBytes} {
			checkDecodeLikeReference(t, []byte(body), maxBody, false)
			checkDecodeLikeReference(t, []byte(body), maxBody, true)
		}
	}
}

func FuzzDecodeAnswersAsEncodingJSON(f *testing.F) {
	for _, body := range decodeSeeds {
		f.Add([]byte(body), uint16(64), false)
	}
	f.Fuzz(func(t *testing.T, body []byte, maxBody uint16, fail bool) {
		checkDecodeLikeReference(t, body, int64(maxBody)+1, fail)
	})
}
