using System.Net;
using System.Net.Http.Headers;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using NearML.Hosting.Coordinator;

namespace NearML.Dashboard.Tests;

/// <summary>
/// HTTP-level tests of the dashboard on real Kestrel over a coordinator status that is not running a job: who gets in
/// (loopback without a token, everything else with it, compared in constant time), what methods exist (read-only), what is
/// served (embedded assets, no CDN) and the options' validation.
/// </summary>
[TestClass]
public sealed class DashboardAccessTests
{
    private const string Token = "s3cret-dashboard-token-0123456789";

    public TestContext TestContext { get; set; } = null!;

    private static readonly string[] GetPaths = ["", "app.js", "app.css", "api/status"];

    /// <summary>A dashboard over an idle <see cref="CoordinatorStatus"/> on Kestrel.</summary>
    private static async Task<(WebApplication App, Uri Base)> StartAsync(Action<NearMLDashboardOptions>? configure = null, string listen = "127.0.0.1")
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(new TestLoggerProvider());
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Parse(listen), 0));
        builder.Services.AddSingleton(new CoordinatorStatus());
        builder.Services.AddOptions<NearMLCoordinatorOptions>().Configure(o => o.DataDirectory = Path.Combine(Path.GetTempPath(), "nearml-dashboard-none-" + Guid.NewGuid().ToString("N")));
        builder.Services.AddNearMLDashboard(configure);
        var app = builder.Build();
        app.MapNearMLDashboard("/nearml");
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return (app, new Uri(address.TrimEnd('/') + "/nearml/"));
    }

    private static HttpClient Client(Uri baseAddress, bool cookies = false) =>
        new(new SocketsHttpHandler { UseCookies = cookies, CookieContainer = new CookieContainer(), AllowAutoRedirect = false }) { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(30) };

    [TestMethod]
    public async Task Loopback_needs_no_token_by_default_and_the_page_is_self_contained()
    {
        var (app, baseAddress) = await StartAsync();
        await using (app)
        {
            using var http = Client(baseAddress);
            foreach (var path in GetPaths)
            {
                using var response = await http.GetAsync(path, TestContext.CancellationToken);
                Assert.AreEqual(HttpStatusCode.OK, response.StatusCode, path);
                Assert.AreEqual("nosniff", response.Headers.GetValues("X-Content-Type-Options").Single());
                StringAssert.Contains(response.Headers.GetValues("Content-Security-Policy").Single(), "default-src 'none'");
            }

            var html = await http.GetStringAsync(string.Empty, TestContext.CancellationToken);
            StringAssert.Contains(html, "<script src=\"app.js\"");
            var js = await http.GetStringAsync("app.js", TestContext.CancellationToken);
            StringAssert.Contains(js, "new EventSource(\"api/events\")");

            // Self-contained: no asset references another origin (no CDN, no fonts, no analytics).
            foreach (var name in DashboardAssets.Names)
            {
                var text = System.Text.Encoding.UTF8.GetString(DashboardAssets.Get(name));
                var external = System.Text.RegularExpressions.Regex.Matches(text, @"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", System.Text.RegularExpressions.RegexOptions.IgnoreCase)
                    .Select(m => m.Value).Where(v => !v.EndsWith("//www.w3.org", StringComparison.Ordinal)).ToList();
                Assert.IsEmpty(external, $"{name} references {string.Join(", ", external)}");
            }

            CollectionAssert.AreEquivalent(new[] { "index.html", "app.js", "app.css" }, DashboardAssets.Names.ToArray());

            // /nearml redirects to /nearml/ so the page's relative URLs resolve under the prefix.
            using var redirect = await http.GetAsync(new Uri(baseAddress, "/nearml"), TestContext.CancellationToken);
            Assert.AreEqual(HttpStatusCode.Redirect, redirect.StatusCode);
            Assert.AreEqual("/nearml/", redirect.Headers.Location!.OriginalString);
        }
    }

    [TestMethod]
    public async Task With_RequireToken_every_endpoint_refuses_a_missing_or_wrong_token_with_401()
    {
        var (app, baseAddress) = await StartAsync(o =>
        {
            o.RequireToken = true;
            o.AccessToken = Token;
        });
        await using (app)
        {
            using var http = Client(baseAddress);
            var wrong = new[]
            {
                null, string.Empty, Token[..^1], Token + "x", Token[..^1] + "Y", Token.ToUpperInvariant(), "s3cret", Token + Token,
            };
            foreach (var path in GetPaths.Append("api/events"))
            {
                foreach (var token in wrong)
                {
                    using var request = new HttpRequestMessage(HttpMethod.Get, path);
                    if (token is not null)
                    {
                        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
                    }

                    using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, TestContext.CancellationToken);
                    Assert.AreEqual(HttpStatusCode.Unauthorized, response.StatusCode, $"{path} with '{token}'");
                    var body = await response.Content.ReadAsStringAsync(TestContext.CancellationToken);
                    Assert.DoesNotContain(Token, body);
                }

                using var query = await http.GetAsync(path + "?token=" + Uri.EscapeDataString(Token[..^1] + "Z"), HttpCompletionOption.ResponseHeadersRead, TestContext.CancellationToken);
                Assert.AreEqual(HttpStatusCode.Unauthorized, query.StatusCode, path + " wrong query token");
            }

            using var verify = await http.PostAsync("api/ledger/verify", null, TestContext.CancellationToken);
            Assert.AreEqual(HttpStatusCode.Unauthorized, verify.StatusCode);

            // The right token, as a bearer header:
            foreach (var path in GetPaths)
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, path);
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Token);
                using var response = await http.SendAsync(request, TestContext.CancellationToken);
                Assert.AreEqual(HttpStatusCode.OK, response.StatusCode, path);
            }
        }
    }

    [TestMethod]
    public async Task A_token_in_the_query_sets_an_HttpOnly_SameSite_cookie_that_the_page_requests_then_carry()
    {
        var (app, baseAddress) = await StartAsync(o =>
        {
            o.RequireToken = true;
            o.AccessToken = Token;
        });
        await using (app)
        {
            using var http = Client(baseAddress, cookies: true);
            using (var before = await http.GetAsync("api/status", TestContext.CancellationToken))
            {
                Assert.AreEqual(HttpStatusCode.Unauthorized, before.StatusCode);
            }

            using var page = await http.GetAsync("?token=" + Uri.EscapeDataString(Token), TestContext.CancellationToken);
            Assert.AreEqual(HttpStatusCode.OK, page.StatusCode);
            var cookie = page.Headers.GetValues("Set-Cookie").Single();
            StringAssert.Contains(cookie, "httponly", StringComparison.OrdinalIgnoreCase);
            StringAssert.Contains(cookie, "samesite=strict", StringComparison.OrdinalIgnoreCase);
            StringAssert.Contains(cookie, "path=/nearml/", StringComparison.OrdinalIgnoreCase);

            // The same client, no token in the URL or headers: the cookie carries it.
            using var after = await http.GetAsync("api/status", TestContext.CancellationToken);
            Assert.AreEqual(HttpStatusCode.OK, after.StatusCode);
        }
    }

    [TestMethod]
    public async Task Without_a_configured_token_a_request_that_needs_one_is_refused_and_told_why()
    {
        var (app, baseAddress) = await StartAsync(o => o.RequireToken = true);
        await using (app)
        {
            using var http = Client(baseAddress);
            using var response = await http.GetAsync("api/status", TestContext.CancellationToken);
            Assert.AreEqual(HttpStatusCode.Unauthorized, response.StatusCode);
            StringAssert.Contains(await response.Content.ReadAsStringAsync(TestContext.CancellationToken), "AccessToken");
        }
    }

    [TestMethod]
    public async Task A_non_loopback_binding_needs_the_token()
    {
        // A real request over a non-loopback interface of this machine, when it has one.
        var address = NetworkInterface.GetAllNetworkInterfaces()
            .Where(n => n.OperationalStatus == OperationalStatus.Up)
            .SelectMany(n => n.GetIPProperties().UnicastAddresses)
            .Select(u => u.Address)
            .FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork && !IPAddress.IsLoopback(a));
        if (address is null)
        {
            Assert.Inconclusive("this machine has no non-loopback IPv4 address to bind; DashboardAccess.NeedsToken is covered by Needs_token_unless_both_ends_are_loopback");
        }

        var (app, baseAddress) = await StartAsync(o => o.AccessToken = Token, address.ToString());
        await using (app)
        {
            using var http = Client(baseAddress);
            using (var anonymous = await http.GetAsync("api/status", TestContext.CancellationToken))
            {
                Assert.AreEqual(HttpStatusCode.Unauthorized, anonymous.StatusCode, $"{baseAddress} without a token");
            }

            using var request = new HttpRequestMessage(HttpMethod.Get, "api/status");
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Token);
            using var authorized = await http.SendAsync(request, TestContext.CancellationToken);
            Assert.AreEqual(HttpStatusCode.OK, authorized.StatusCode);
            TestContext.WriteLine($"bound {baseAddress}: 401 without the token, 200 with it");
        }
    }

    [TestMethod]
    public void Needs_token_unless_both_ends_are_loopback()
    {
        var loopback = new[] { IPAddress.Loopback, IPAddress.IPv6Loopback, IPAddress.Parse("127.0.0.2"), IPAddress.Parse("127.255.255.254") };
        var others = new[]
        {
            IPAddress.Parse("10.0.0.5"), IPAddress.Parse("192.168.1.20"), IPAddress.Parse("172.17.0.1"), IPAddress.Parse("8.8.8.8"),
            IPAddress.Parse("fe80::1"), IPAddress.Parse("2001:db8::1"), IPAddress.Any, IPAddress.IPv6Any, IPAddress.Parse("128.0.0.1"),
        };
        var open = new NearMLDashboardOptions();
        var strict = new NearMLDashboardOptions { RequireToken = true };
        foreach (var local in loopback.Concat(others).Append(null))
        {
            foreach (var remote in loopback.Concat(others).Append(null))
            {
                var bothLoopback = local is not null && remote is not null && loopback.Contains(local) && loopback.Contains(remote);
                Assert.AreEqual(!bothLoopback, DashboardAccess.NeedsToken(local, remote, open), $"{local} ← {remote}");
                Assert.IsTrue(DashboardAccess.NeedsToken(local, remote, strict), $"{local} ← {remote} with RequireToken");
            }
        }
    }

    [TestMethod]
    public void Token_comparison_accepts_exactly_the_configured_token()
    {
        var random = new Random(16);
        for (var i = 0; i < 2000; i++)
        {
            var expected = RandomToken(random, random.Next(16, 48));
            Assert.IsTrue(DashboardAccess.TokenMatches(expected, expected));
            Assert.IsTrue(DashboardAccess.TokenMatches(new string(expected.ToCharArray()), expected));

            // Every single-character change, truncation and extension is refused.
            var chars = expected.ToCharArray();
            var at = random.Next(chars.Length);
            chars[at] = chars[at] == 'a' ? 'b' : 'a';
            Assert.IsFalse(DashboardAccess.TokenMatches(new string(chars), expected));
            Assert.IsFalse(DashboardAccess.TokenMatches(expected[..^1], expected));
            Assert.IsFalse(DashboardAccess.TokenMatches(expected + "a", expected));
            Assert.IsFalse(DashboardAccess.TokenMatches(RandomToken(random, expected.Length), expected));
        }

        Assert.IsFalse(DashboardAccess.TokenMatches(null, Token));
        Assert.IsFalse(DashboardAccess.TokenMatches(string.Empty, Token));
        Assert.IsFalse(DashboardAccess.TokenMatches(string.Empty, string.Empty), "no configured token matches nothing");
        Assert.IsFalse(DashboardAccess.TokenMatches(Token, null));

        static string RandomToken(Random random, int length) => new([.. Enumerable.Range(0, length).Select(_ => (char)random.Next(33, 127))]);
    }

    [TestMethod]
    public async Task The_dashboard_is_read_only_every_other_method_gets_405()
    {
        var (app, baseAddress) = await StartAsync();
        await using (app)
        {
            using var http = Client(baseAddress);
            foreach (var path in GetPaths.Append("api/events"))
            {
                foreach (var method in new[] { HttpMethod.Post, HttpMethod.Put, HttpMethod.Delete, HttpMethod.Patch })
                {
                    using var request = new HttpRequestMessage(method, path) { Content = new StringContent("{}") };
                    using var response = await http.SendAsync(request, TestContext.CancellationToken);
                    Assert.AreEqual(HttpStatusCode.MethodNotAllowed, response.StatusCode, $"{method} {path}");
                }
            }

            foreach (var method in new[] { HttpMethod.Get, HttpMethod.Put, HttpMethod.Delete })
            {
                using var request = new HttpRequestMessage(method, "api/ledger/verify");
                using var response = await http.SendAsync(request, TestContext.CancellationToken);
                Assert.AreEqual(HttpStatusCode.MethodNotAllowed, response.StatusCode, $"{method} api/ledger/verify");
            }

            // No ledger yet: the verdict says so (and creates nothing).
            using var verify = await http.PostAsync("api/ledger/verify", null, TestContext.CancellationToken);
            Assert.AreEqual(HttpStatusCode.OK, verify.StatusCode);
            var verdict = System.Text.Json.JsonDocument.Parse(await verify.Content.ReadAsStringAsync(TestContext.CancellationToken)).RootElement;
            Assert.IsFalse(verdict.GetProperty("valid").GetBoolean());
            Assert.AreEqual("Missing", verdict.GetProperty("problem").GetString());
            var data = app.Services.GetRequiredService<IOptions<NearMLCoordinatorOptions>>().Value.DataDirectory;
            Assert.IsFalse(Directory.Exists(data), "verifying created nothing");
        }
    }

    [TestMethod]
    public void Options_are_validated_and_the_prefix_is_checked()
    {
        var services = new ServiceCollection();
        services.AddSingleton(new CoordinatorStatus());
        services.AddNearMLDashboard(o => o.AccessToken = "short");
        using var provider = services.BuildServiceProvider();
        var ex = Assert.ThrowsExactly<OptionsValidationException>(() => provider.GetRequiredService<IOptions<NearMLDashboardOptions>>().Value);
        StringAssert.Contains(ex.Message, "16 characters");

        var builder = WebApplication.CreateSlimBuilder();
        builder.Services.AddSingleton(new CoordinatorStatus());
        builder.Services.AddNearMLDashboard();
        var app = builder.Build();
        foreach (var bad in new[] { "nearml", "/nearml/", string.Empty })
        {
            Assert.Throws<ArgumentException>(() => app.MapNearMLDashboard(bad), bad);
        }
    }
}

/// <summary>Writes errors of the web host to the test output (an unexpected 500 then shows its exception).</summary>
internal sealed class TestLoggerProvider : ILoggerProvider
{
    public ILogger CreateLogger(string categoryName) => new Logger(categoryName);

    public void Dispose()
    {
    }

    private sealed class Logger(string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Error;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Console.Error.WriteLine($"{logLevel} {category}: {formatter(state, exception)} {exception}");
    }
}
