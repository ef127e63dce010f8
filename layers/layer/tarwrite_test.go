package layer

import (
	"reflect"
	"testing"
)

func TestPathLess(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"a", "a/b", true},
		{"a/b", "a-b", true}, // a directory's contents come before its siblings
		{"a-b", "a/b", false},
		{"a/z", "ab", true},
		{"a", "a", false},
		{"a/b", "a/c", true},
		{".wh.x", "x", true},
		{"x/.wh..wh..opq", "x/a", true},
	}
	for _, tt := range tests {
		if got := pathLess(tt.a, tt.b); got != tt.want {
			t.Errorf("pathLess(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestPrepareItems(t *testing.T) {
	tests := []struct {
		name string
		in   []item
		want []item
	}{
		{"parents added and sorted",
			[]item{{dest: "b/c/d", src: "1"}, {dest: "a", src: "2"}},
			[]item{{dest: "a", src: "2"}, {dest: "b", kind: kindDir}, {dest: "b/c", kind: kindDir}, {dest: "b/c/d", src: "1"}}},
		{"last duplicate wins",
			[]item{{dest: "x", src: "1"}, {dest: "y", src: "2"}, {dest: "x", src: "3"}},
			[]item{{dest: "x", src: "3"}, {dest: "y", src: "2"}}},
		{"listed parent is not duplicated",
			[]item{{dest: "d/f", src: "1"}, {dest: "d", src: "2"}},
			[]item{{dest: "d", src: "2"}, {dest: "d/f", src: "1"}}},
		{"whiteouts sort among siblings",
			[]item{{dest: "d/z", src: "1"}, {dest: "d/.wh.a", kind: kindWhiteout}},
			[]item{{dest: "d", kind: kindDir}, {dest: "d/.wh.a", kind: kindWhiteout}, {dest: "d/z", src: "1"}}},
		{"empty", nil, []item{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := prepareItems(tt.in); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}
