package grpcsvc

import (
	"context"
	"testing"

	"google.golang.org/grpc/metadata"
)

func TestTokenFrom(t *testing.T) {
	for _, tc := range []struct {
		name      string
		md        metadata.MD
		tok       string
		sent      bool
		noContext bool
	}{
		{name: "no metadata", noContext: true},
		{name: "other keys", md: metadata.Pairs("x", "y")},
		{name: "token", md: metadata.Pairs("token", "abc"), tok: "abc", sent: true},
		{name: "bearer", md: metadata.Pairs("authorization", "Bearer abc"), tok: "abc", sent: true},
		{name: "empty token", md: metadata.Pairs("token", ""), tok: "", sent: true},
		{name: "token wins", md: metadata.Pairs("authorization", "b", "token", "a"), tok: "a", sent: true},
	} {
		ctx := context.Background()
		if !tc.noContext {
			ctx = metadata.NewIncomingContext(ctx, tc.md)
		}
		tok, sent := TokenFrom(ctx)
		if tok != tc.tok || sent != tc.sent {
			t.Errorf("%s: got %q %v, want %q %v", tc.name, tok, sent, tc.tok, tc.sent)
		}
	}
}
