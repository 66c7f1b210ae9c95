// Debian's Chromium through playwright-core, as every browser test launches it
// (../../shared/TOOLCHAIN.md): a fresh temporary profile, fake camera, host candidates on the
// namespace's own addresses. Never downloads a browser.
import { chromium } from "playwright-core";

/** Fails unless the test runs inside its own network namespace (`browser/netns.sh`). */
export function requireNetns() {
  if (!process.env.EDGESIGNAL_IN_NETNS) {
    throw new Error("run inside the test's own network namespace: bash browser/netns.sh node --test browser/test/");
  }
}

export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--use-fake-device-for-media-stream",
      "--use-fake-ui-for-media-stream",
      // Host candidates on the namespace's own addresses, not mDNS names.
      "--disable-features=WebRtcHideLocalIpsWithMdns",
    ],
  });
}
