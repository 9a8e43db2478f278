//! While the proxy serves: runs the search every `slices.every` over the
//! newest `slices.window` of each route and notifies (`slice`) each slice
//! that was not significant at the previous run.
