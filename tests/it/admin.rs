//! Issue 3: the admin API and the CLI against a running proxy: auth, weights
//! in effect on the next request and after a restart, reload, feedback.
