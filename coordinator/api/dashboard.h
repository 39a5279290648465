#pragma once
// The dashboard `strata serve` shows at `/`: one self-contained HTML page
// (no external scripts, fonts or styles) that polls /v1/strata/status every
// second and draws the cluster's topology and health, each node's memory per
// tier, live tokens/s and latency as small charts, and the requests in
// flight. With an API key, open it as /#key=KEY: the page sends the key as
// its bearer token (a fragment never reaches a server, a log or a Referer;
// the tab keeps it, the address bar drops it); the page itself holds no data.
namespace strata {

extern const char* const kDashboardHtml;

}  // namespace strata
