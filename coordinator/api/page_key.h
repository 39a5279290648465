#pragma once
// The script both pages (the dashboard, the chat page) open with: the API
// key comes in the URL fragment (#key=KEY), which no server, log or Referer
// sees; it is kept for the tab (sessionStorage) and taken out of the address
// bar, and `key` holds it (null: none). A string literal, so that each page
// is one literal built at compile time.
#define STRATA_PAGE_KEY_SCRIPT                                                                      \
  "const fragment = new URLSearchParams(location.hash.slice(1));\n"                               \
  "if (fragment.get(\"key\")) sessionStorage.setItem(\"strata-key\", fragment.get(\"key\"));\n"    \
  "fragment.delete(\"key\");\n"                                                                    \
  "window.history.replaceState(null, \"\", location.pathname + (fragment.toString() ? \"#\" + fragment : \"\"));\n" \
  "const key = sessionStorage.getItem(\"strata-key\");\n"
