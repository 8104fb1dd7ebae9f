#!/bin/sh
# The report test renders report.html in a real headless Chromium (Debian package `chromium`).
# Install it when missing and we may (root with apt-get); otherwise say why the test will skip.
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium for the report test..."
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
        || echo "warning: could not install chromium; the browser test will be skipped"
else
    echo "warning: chromium not found (install the 'chromium' package); the browser test will be skipped"
fi
exit 0
