package clusterfile

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary text to Parse. Seeds are under
// testdata/fuzz/FuzzParse: sealer's fixtures and small cases.
//
// Parse must not panic; its errors must be *Error values with the file
// name and a sentinel; what it accepts must marshal and read back to the
// same model.
func FuzzParse(f *testing.F) {
	f.Add([]byte(v2 + "  hosts:\n" + master))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("fuzz", data)
		if err != nil {
			checkFuzzError(t, err)
			return
		}
		out, err := file.Marshal()
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		back, err := Parse("fuzz", out)
		if err != nil {
			t.Fatalf("Parse(Marshal()): %v\ninput:\n%q\nmarshalled:\n%s", err, data, out)
		}
		again, err := back.Marshal()
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("second Marshal differs (%v):\n%s\n----\n%s", err, again, out)
		}
		if a, b := clearLines(back), clearLines(file); !reflect.DeepEqual(a, b) {
			t.Fatalf("round trip changed the model:\n got %+v\nwant %+v\nmarshalled:\n%s", a, b, out)
		}
	})
}

func checkFuzzError(t *testing.T, err error) {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	if len(errs) > maxErrors {
		t.Fatalf("%d errors", len(errs))
	}
	for _, e := range errs {
		var pe *Error
		if !errors.As(e, &pe) || pe.File != "fuzz" || pe.Err == nil {
			t.Fatalf("not an *Error with file and sentinel: %#v", e)
		}
		if pe.Line == 0 && !errors.Is(pe, ErrTooLarge) {
			t.Fatalf("error without a line: %v", pe)
		}
	}
}

// FuzzParseHostList checks that ParseHostList never panics, returns
// canonical addresses within MaxHosts, and reads its own output back.
func FuzzParseHostList(f *testing.F) {
	f.Add("10.0.0.1-10.0.0.9,fd00::1")
	f.Fuzz(func(t *testing.T, s string) {
		ips, err := ParseHostList(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error without ErrInvalid: %v", err)
			}
			return
		}
		if len(ips) > MaxHosts {
			t.Fatalf("%d hosts", len(ips))
		}
		for _, ip := range ips {
			a, err := netip.ParseAddr(ip)
			if err != nil || a.String() != ip || a.Zone() != "" || a.Is4In6() {
				t.Fatalf("%q is not canonical", ip)
			}
		}
		again, err := ParseHostList(strings.Join(ips, ","))
		if err != nil || !reflect.DeepEqual(again, ips) && len(ips) > 0 {
			t.Fatalf("re-parse of %q: %q, %v", ips, again, err)
		}
	})
}
