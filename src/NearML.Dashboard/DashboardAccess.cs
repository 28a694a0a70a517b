using System.Net;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;

namespace NearML.Dashboard;

/// <summary>
/// Who may read the dashboard: a request between two loopback addresses needs nothing (unless
/// <see cref="NearMLDashboardOptions.RequireToken"/>); any other must carry the access token, compared in constant time.
/// </summary>
internal static class DashboardAccess
{
    public const string CookieName = "nearml-dashboard-token";
    public const string QueryName = "token";

    /// <summary>Whether a request on this connection needs the token.</summary>
    public static bool NeedsToken(IPAddress? local, IPAddress? remote, NearMLDashboardOptions options) =>
        options.RequireToken || local is null || remote is null || !IPAddress.IsLoopback(local) || !IPAddress.IsLoopback(remote);

    /// <summary>Compares a presented token with the configured one in time independent of where they differ.</summary>
    public static bool TokenMatches(string? presented, string? expected)
    {
        if (string.IsNullOrEmpty(expected) || string.IsNullOrEmpty(presented))
        {
            return false;
        }

        // Hash both so the comparison also does not depend on the lengths.
        Span<byte> a = stackalloc byte[32];
        Span<byte> b = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes(presented), a);
        SHA256.HashData(Encoding.UTF8.GetBytes(expected), b);
        return CryptographicOperations.FixedTimeEquals(a, b);
    }

    /// <summary>The token a request presents: the bearer header, the query parameter or the cookie (first found).</summary>
    public static (string? Token, bool FromQuery) Presented(HttpRequest request)
    {
        var header = request.Headers.Authorization.ToString();
        if (header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return (header["Bearer ".Length..].Trim(), false);
        }

        if (request.Query.TryGetValue(QueryName, out var query) && query.Count == 1)
        {
            return (query[0], true);
        }

        return (request.Cookies.TryGetValue(CookieName, out var cookie) ? cookie : null, false);
    }

    /// <summary>Wraps a handler with the access check, the security headers and the no-store policy.</summary>
    public static RequestDelegate Guard(NearMLDashboardOptions options, string cookiePath, RequestDelegate inner) => async context =>
    {
        var response = context.Response;
        response.Headers.XContentTypeOptions = "nosniff";
        response.Headers.XFrameOptions = "DENY";
        response.Headers.CacheControl = "no-store";
        response.Headers["Referrer-Policy"] = "no-referrer";
        response.Headers.ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
        var connection = context.Connection;
        if (NeedsToken(connection.LocalIpAddress, connection.RemoteIpAddress, options))
        {
            var (token, fromQuery) = Presented(context.Request);
            if (!TokenMatches(token, options.AccessToken))
            {
                response.StatusCode = StatusCodes.Status401Unauthorized;
                response.Headers.WWWAuthenticate = "Bearer realm=\"nearml-dashboard\"";
                response.ContentType = "text/plain; charset=utf-8";
                await response.WriteAsync(
                    string.IsNullOrEmpty(options.AccessToken)
                        ? "401: this dashboard is reached over the network and has no access token configured (NearMLDashboardOptions.AccessToken)."
                        : "401: the NearML dashboard needs its access token (open it once with ?token=…, or send Authorization: Bearer …).",
                    context.RequestAborted).ConfigureAwait(false);
                return;
            }

            if (fromQuery)
            {
                // The page's own requests (event stream, verify) then carry it without putting it in more URLs.
                response.Cookies.Append(CookieName, token!, new CookieOptions { HttpOnly = true, SameSite = SameSiteMode.Strict, Path = cookiePath, Secure = context.Request.IsHttps, IsEssential = true });
            }
        }

        await inner(context).ConfigureAwait(false);
    };
}
