// Package discover finds the container images a cluster image needs, the way
// sealer does when it builds one (sealer.md §5.2): from imageList files,
// from the image fields of the YAML manifests under manifests/ and in the
// apps under application/apps/, from the Helm charts under charts/ and in
// helm apps (rendered at their default values), and from the image lists
// given on the command line (--image-list, --image-list-with-auth, minus
// --ignored-image-list).
//
// Discover reads a materialised rootfs and returns the normalized references
// with where each came from. The parsers it is built on (ParseImageList,
// ParseAuthList, ManifestImages, ChartImages) are exported for callers that
// hold a single file. Errors locate the problem as FILE:LINE and wrap one of
// the sentinel errors; problems that do not stop a build (an image field that
// holds a template rather than a reference) are returned as warnings.
package discover
