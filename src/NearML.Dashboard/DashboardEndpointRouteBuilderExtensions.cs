using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace NearML.Dashboard;

/// <summary>Maps the dashboard's page, assets and API.</summary>
public static class DashboardEndpointRouteBuilderExtensions
{
    /// <summary>
    /// Maps the dashboard under <paramref name="prefix"/>: the page (<c>{prefix}/</c>), its script and styles, the status as
    /// JSON (<c>GET {prefix}/api/status</c>), the Server-Sent Events stream (<c>GET {prefix}/api/events</c>, one
    /// <c>status</c> event per change) and the ledger check (<c>POST {prefix}/api/ledger/verify</c>, which only reads).
    /// Every other method gets 405. Requires <see cref="DashboardServiceCollectionExtensions.AddNearMLDashboard"/>.
    /// </summary>
    /// <param name="endpoints">The application's endpoints.</param>
    /// <param name="prefix">The path prefix, for example <c>/nearml</c>.</param>
    /// <returns>The route group, for further conventions (host filters, authorization).</returns>
    public static RouteGroupBuilder MapNearMLDashboard(this IEndpointRouteBuilder endpoints, string prefix = "/nearml")
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentException.ThrowIfNullOrEmpty(prefix);
        if (!prefix.StartsWith('/') || prefix.Length > 1 && prefix.EndsWith('/'))
        {
            throw new ArgumentException($"The prefix must start with '/' and not end with one; got '{prefix}'.", nameof(prefix));
        }

        var feed = endpoints.ServiceProvider.GetRequiredService<DashboardFeed>();
        var verifier = endpoints.ServiceProvider.GetRequiredService<LedgerVerifier>();
        var options = endpoints.ServiceProvider.GetRequiredService<IOptions<NearMLDashboardOptions>>().Value;
        var cookiePath = prefix == "/" ? "/" : prefix + "/";
        RequestDelegate Guard(RequestDelegate inner) => DashboardAccess.Guard(options, cookiePath, inner);

        var group = endpoints.MapGroup(prefix);

        // One route matches {prefix} and {prefix}/; the former redirects so that the page's relative URLs resolve under the prefix.
        group.MapGet("/", Guard(context =>
        {
            if (context.Request.Path.Value?.EndsWith('/') != true)
            {
                context.Response.Redirect(cookiePath + context.Request.QueryString, permanent: false);
                return Task.CompletedTask;
            }

            return DashboardAssets.WriteAsync(context, "index.html");
        }));
        group.MapGet("/app.js", Guard(context => DashboardAssets.WriteAsync(context, "app.js")));
        group.MapGet("/app.css", Guard(context => DashboardAssets.WriteAsync(context, "app.css")));
        group.MapGet("/api/status", Guard(async context =>
        {
            var (_, json) = feed.Current();
            context.Response.ContentType = "application/json; charset=utf-8";
            await context.Response.Body.WriteAsync(json, context.RequestAborted).ConfigureAwait(false);
        }));
        group.MapGet("/api/events", Guard(context => StreamAsync(context, feed)));
        group.MapPost("/api/ledger/verify", Guard(async context =>
        {
            var verdict = await verifier.VerifyAsync(context.RequestAborted).ConfigureAwait(false);
            context.Response.ContentType = "application/json; charset=utf-8";
            await context.Response.Body.WriteAsync(JsonSerializer.SerializeToUtf8Bytes(verdict, DashboardJsonContext.Default.LedgerVerdict), context.RequestAborted).ConfigureAwait(false);
        }));
        return group;
    }

    /// <summary>The Server-Sent Events stream: the current status at once, then one event per (coalesced) change.</summary>
    private static async Task StreamAsync(HttpContext context, DashboardFeed feed)
    {
        var options = feed.Options;
        var response = context.Response;
        var ct = context.RequestAborted;
        response.ContentType = "text/event-stream";
        response.Headers["X-Accel-Buffering"] = "no";
        context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpResponseBodyFeature>()?.DisableBuffering();
        var body = response.Body;
        var seen = -1L;
        try
        {
            // Reconnecting clients get a fresh status at once; retry: tells EventSource how long to wait after a drop.
            await body.WriteAsync("retry: 2000\n\n"u8.ToArray(), ct).ConfigureAwait(false);
            while (!ct.IsCancellationRequested)
            {
                var (version, json) = feed.Current();
                if (version != seen)
                {
                    await body.WriteAsync(Encoding.ASCII.GetBytes($"id: {version}\nevent: status\ndata: "), ct).ConfigureAwait(false);
                    await body.WriteAsync(json, ct).ConfigureAwait(false);
                    await body.WriteAsync("\n\n"u8.ToArray(), ct).ConfigureAwait(false);
                    await body.FlushAsync(ct).ConfigureAwait(false);
                    seen = version;
                }

                if (!await feed.WaitForChangeAsync(seen, options.KeepAliveInterval, ct).ConfigureAwait(false))
                {
                    await body.WriteAsync(": keep-alive\n\n"u8.ToArray(), ct).ConfigureAwait(false);
                    await body.FlushAsync(ct).ConfigureAwait(false);
                    continue;
                }

                // Coalesce bursts (every worker's progress report is a change) into one event per interval.
                if (options.MinimumPushInterval > TimeSpan.Zero)
                {
                    await Task.Delay(options.MinimumPushInterval, ct).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // the page went away
        }
        catch (IOException) when (ct.IsCancellationRequested)
        {
        }
    }
}
