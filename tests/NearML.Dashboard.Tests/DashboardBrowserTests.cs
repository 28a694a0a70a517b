using Microsoft.Playwright;

namespace NearML.Dashboard.Tests;

/// <summary>
/// The dashboard in a real browser: Microsoft.Playwright drives Debian's chromium (headless) against a real coordinator
/// and two real workers. The page is loaded before any worker joins; as rounds complete its rows and chart update from
/// Server-Sent Events in the same document (no reload); "Verify ledger" shows the verdict; a screenshot is attached.
/// </summary>
[TestClass]
public sealed class DashboardBrowserTests
{
    public TestContext TestContext { get; set; } = null!;

    /// <summary>The system chromium: <c>$NEARML_CHROMIUM</c>, else Debian's <c>/usr/bin/chromium</c>.</summary>
    private static string? FindChromium() =>
        new[] { Environment.GetEnvironmentVariable("NEARML_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser" }
            .FirstOrDefault(p => !string.IsNullOrEmpty(p) && File.Exists(p));

    [TestMethod]
    [Timeout(300_000, CooperativeCancellation = true)]
    public async Task The_page_shows_rows_and_the_chart_update_as_rounds_complete_without_a_reload()
    {
        var chromium = FindChromium();
        if (chromium is null)
        {
            Assert.Inconclusive("chromium is not installed (apt-get install -y chromium; or set NEARML_CHROMIUM to a Chromium executable): Playwright's own browser download is not used.");
        }

        const int Rounds = 4;
        await using var cluster = await DashboardCluster.StartAsync(rounds: Rounds);
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = chromium,
            Headless = true,
            // root in CI: chromium's sandbox needs an unprivileged user
            Args = ["--no-sandbox", "--disable-gpu"],
        });
        TestContext.WriteLine($"{chromium}: {browser.Version}");
        var page = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1400, Height = 1100 } });
        var consoleErrors = new List<string>();
        page.Console += (_, m) =>
        {
            if (m.Type == "error")
            {
                consoleErrors.Add($"{m.Text} ({m.Location})");
            }
        };
        page.PageError += (_, e) => consoleErrors.Add(e);
        var navigations = 0;
        page.FrameNavigated += (_, f) =>
        {
            if (f == page.MainFrame)
            {
                navigations++;
            }
        };
        var wait = new PageWaitForFunctionOptions { Timeout = (float)DashboardCluster.Timeout.TotalMilliseconds, PollingInterval = 100 };

        var response = await page.GotoAsync(cluster.BaseAddress.ToString());
        Assert.AreEqual(200, response!.Status);
        await page.WaitForFunctionAsync("() => Number(document.body.dataset.events) >= 1", null, wait);
        Assert.AreEqual("0", await page.GetAttributeAsync("#chart", "data-points"), "no round yet");
        Assert.AreEqual(0, await page.Locator("#rounds tr").CountAsync());
        Assert.AreEqual("live", await page.TextContentAsync("#live"));
        await page.EvaluateAsync("() => { window.__sameDocument = 'yes'; }");
        var navigationsBefore = navigations;

        await cluster.StartWorkersAsync(2);

        // Contributors appear, then the first round's row and chart point, pushed into the same document.
        await page.WaitForFunctionAsync("() => document.querySelectorAll('#workers tr').length === 2", null, wait);
        await page.WaitForFunctionAsync("() => document.querySelectorAll('#rounds tr').length >= 1 && document.querySelector('#loss-line') !== null", null, wait);
        var eventsAtFirstRound = int.Parse(await page.EvaluateAsync<string>("() => document.body.dataset.events"), System.Globalization.CultureInfo.InvariantCulture);
        await page.WaitForFunctionAsync($"() => document.querySelectorAll('#rounds tr').length === {Rounds} && document.querySelector('#state').textContent === 'completed'", null, wait);
        await page.WaitForFunctionAsync($"() => Array.from(document.querySelectorAll('#workers tr')).every(r => r.children[7].textContent === '{Rounds}')", null, wait);
        await page.WaitForFunctionAsync("() => document.querySelectorAll('#settlements tr').length >= 2 && document.querySelectorAll('#payouts tr').length === 2", null, wait);

        Assert.AreEqual("yes", await page.EvaluateAsync<string>("() => window.__sameDocument"), "the page was not reloaded");
        Assert.AreEqual(navigationsBefore, navigations, "no navigation after the first load");
        var events = int.Parse(await page.EvaluateAsync<string>("() => document.body.dataset.events"), System.Globalization.CultureInfo.InvariantCulture);
        Assert.IsGreaterThan(eventsAtFirstRound, events, "later rounds arrived as further events");
        Assert.AreEqual(Rounds.ToString(System.Globalization.CultureInfo.InvariantCulture), await page.GetAttributeAsync("#loss-line", "data-points"));
        Assert.AreEqual(Rounds.ToString(System.Globalization.CultureInfo.InvariantCulture), await page.GetAttributeAsync("#accuracy-line", "data-points"));
        Assert.AreEqual(Rounds, await page.Locator("#chart circle.loss").CountAsync());
        var newestRound = await page.Locator("#rounds tr").First.Locator("td").First.TextContentAsync();
        Assert.AreEqual((Rounds - 1).ToString(System.Globalization.CultureInfo.InvariantCulture), newestRound, "newest round first");
        var workerRow = await page.Locator("#workers tr").First.Locator("td").AllTextContentsAsync();
        Assert.AreEqual("worker-1", workerRow[0]);
        Assert.AreEqual("simulated (insecure)", workerRow[2]);
        Assert.AreEqual(cluster.Status.LedgerRoot, await page.TextContentAsync("#ledger-root"));
        StringAssert.EndsWith(await page.TextContentAsync("#bytes-ratio"), "×");

        // Verify ledger: the verdict appears on the page.
        await page.ClickAsync("#verify");
        await page.WaitForFunctionAsync("() => document.querySelector('#verify-result').dataset.valid !== ''", null, wait);
        var verdict = await page.TextContentAsync("#verify-result");
        TestContext.WriteLine($"verify ledger: {verdict}");
        Assert.AreEqual("true", await page.GetAttributeAsync("#verify-result", "data-valid"), verdict);
        StringAssert.Contains(verdict, $"{2 * Rounds} entries verified");
        Assert.IsEmpty(consoleErrors, string.Join("; ", consoleErrors));

        var screenshot = Path.Combine(TestContext.TestResultsDirectory ?? Path.GetTempPath(), "dashboard.png");
        Directory.CreateDirectory(Path.GetDirectoryName(screenshot)!);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = screenshot, FullPage = true });
        TestContext.AddResultFile(screenshot);
        TestContext.WriteLine($"screenshot: {screenshot}");

        // The docs' picture is refreshed on request only (a test run leaves the checkout clean).
        if (Environment.GetEnvironmentVariable("NEARML_UPDATE_DOCS_IMAGES") == "1" && DashboardCluster.RepositoryRoot() is { } root)
        {
            var docs = Path.Combine(root, "docs", "images", "dashboard.png");
            Directory.CreateDirectory(Path.GetDirectoryName(docs)!);
            File.Copy(screenshot, docs, overwrite: true);
            TestContext.WriteLine($"updated {docs}");
        }
    }
}
