-- wrk script for the load benchmark (benches/load.rs): POST with a ~1 KiB JSON body.
local pad = string.rep("lorem ipsum ", 72)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"user":"u-40312","tier":"enterprise","features":{"visits":12,"pages":[1,2,3,5,8],'
  .. '"country":"DE","referrer":"newsletter"},"note":"' .. pad .. '"}'
