// Package layer is the byte-level machinery of cluster-image layers: it
// writes OCI layer tarballs from host files (WriteLayer, fed by ResolveCopy),
// applies them to a directory (Apply, Decompress) or unpacks them as the
// lower directories of an overlay mount (ApplyOverlayLower), and turns the
// effect of a build step into a layer, either from the upper directory of an
// overlay mount (MountOverlay, DiffOverlayUpper) or by comparing a directory
// with an earlier Snapshot of it (Snapshot, DiffTrees, CopyTree).
//
// Layers follow the OCI image-spec layer rules: deletions are whiteout files
// named ".wh.NAME", and ".wh..wh..opq" hides everything a lower layer had in
// its directory. Output is deterministic: the same files give the same tar
// bytes and digests whenever and wherever they are written.
//
// Apply, CopyTree and the overlay functions are implemented for Linux only;
// elsewhere they return errors.ErrUnsupported, and WriteLayer, Snapshot and
// DiffTrees see no hard links, ownership or status-change times.
package layer
