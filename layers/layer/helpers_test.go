package layer

import "testing"

// must fails the test on an error from setting it up.
func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
