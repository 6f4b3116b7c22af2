package cli

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// chromiumPath is Debian's chromium, which .ci/run installs.
const chromiumPath = "/usr/bin/chromium"

// browser starts a headless Chromium with a phone's viewport; it records
// every URL the page asks for. Without Chromium the test is skipped locally
// and fails in CI, where .ci/run installs it.
func browser(t *testing.T) (context.Context, func() []string) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing in CI (.ci/run installs the chromium package): %v", chromiumPath, err)
		}
		t.Skipf("%s is missing: apt-get install chromium to run the browser test", chromiumPath)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true))
	var mu sync.Mutex
	var requested []string
	ctx, cancel := chromedp.NewContext(alloc, chromedp.WithListener(func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			mu.Lock()
			requested = append(requested, e.Request.URL)
			mu.Unlock()
		}
	}))
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2))); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), requested...)
	}
}

// js evaluates expression in the page.
func js[T any](t *testing.T, ctx context.Context, expression string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expression))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expression, err)
	}
	return v
}

// until waits for a JavaScript predicate to hold in the page.
func until(t *testing.T, ctx context.Context, what, predicate string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](predicate, chromedp.WithPollingInterval(50*time.Millisecond),
		chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatalf("waiting for %s (%s): %v\npage text:\n%s", what, predicate, err, js[string](t, ctx, "document.body.innerText"))
	}
}

// screenshot writes docs/pairing/name when BLACKSKY_UPDATE_SCREENSHOTS=1.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if os.Getenv("BLACKSKY_UPDATE_SCREENSHOTS") != "1" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "..", "docs", "pairing", name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// /pair as someone on a phone uses it: a QR code with a countdown, a
// pairing code by phone number, and after the scan "linked as" with the
// next steps, all without reloading the page or loading anything from
// elsewhere.
func TestPairPageInABrowser(t *testing.T) {
	ctx, requested := browser(t)
	sb := startSandbox(t)
	bot := start(t, botEnv(t, sb, ""))
	bot.waitHTTP(t, "/healthz", http.StatusOK)
	page := fmt.Sprintf("http://127.0.0.1:%d/pair", bot.port)

	if err := chromedp.Do(ctx, chromedp.Navigate(page)); err != nil {
		t.Fatal(err)
	}
	if vp := js[string](t, ctx, `(document.querySelector('meta[name=viewport]') || {}).content || ""`); !strings.Contains(vp, "width=device-width") {
		t.Errorf("viewport meta = %q; a phone shows the desktop layout", vp)
	}
	js[bool](t, ctx, `window.blackskyNoReload = true`)
	until(t, ctx, "the QR code image", `(() => { const i = document.getElementById("qr");
		return i && i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 150 && !!i.dataset.qr; })()`)
	until(t, ctx, "a countdown", `/expires in \d+ s/.test(document.getElementById("countdown").innerText)`)
	first := js[string](t, ctx, `document.getElementById("countdown").innerText`)
	until(t, ctx, "the countdown to move", fmt.Sprintf(`document.getElementById("countdown").innerText !== %q`, first))
	if js[int](t, ctx, `document.documentElement.scrollWidth`) > 390 {
		t.Error("the page is wider than the phone's screen")
	}
	screenshot(t, ctx, "qr.png")

	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("phone"), "+1 555 000 0001"),
		chromedp.Click(chromedp.ID("getcode")),
	); err != nil {
		t.Fatal(err)
	}
	until(t, ctx, "a pairing code", `!document.getElementById("codebox").hidden && /^[A-Z0-9]{4}-[A-Z0-9]{4}$/.test(document.getElementById("code").innerText.trim())`)
	js[bool](t, ctx, `document.getElementById("codebox").scrollIntoView(), true`)
	screenshot(t, ctx, "code.png")

	qr := js[string](t, ctx, `document.getElementById("qr").dataset.qr`)
	if status := control(t, sb.url, "POST", "/control/phone/scan", map[string]string{"qr": qr}, nil); status != http.StatusOK {
		t.Fatalf("the phone could not scan the page's QR code: %d", status)
	}
	until(t, ctx, "linked as", `!document.getElementById("linked").hidden && document.getElementById("account").innerText.startsWith("+15550000001")`)
	text := js[string](t, ctx, `document.body.innerText`)
	for _, want := range []string{"Linked as +15550000001", "Next steps", "/api/v1/messages"} {
		if !strings.Contains(text, want) {
			t.Errorf("the linked page lacks %q:\n%s", want, text)
		}
	}
	if !js[bool](t, ctx, `window.blackskyNoReload === true`) {
		t.Error("the page reloaded itself")
	}
	js[bool](t, ctx, `window.scrollTo(0, 0), true`)
	screenshot(t, ctx, "linked.png")

	urls := requested()
	if !strings.Contains(strings.Join(urls, " "), "/api/v1/pair") {
		t.Fatalf("the network listener saw %v; want the page's own requests among them", urls)
	}
	for _, u := range urls {
		parsed, err := url.Parse(u)
		if err != nil || (parsed.Scheme != "blob" && parsed.Scheme != "data" && parsed.Hostname() != "127.0.0.1") {
			t.Errorf("the page loaded %s, from outside this bot", u)
		}
	}
}
