using System.Globalization;
using NearML.Core.Contracts.Aggregation;

namespace NearML.Aggregation;

/// <summary>
/// A client's local floor for the secure-aggregation rounds it joins, checked against the configuration the server
/// sends before any key is generated (<see cref="Check"/>). A server that proposes something weaker — the plain or
/// semi-honest (unsigned) variant, another client's identity at this client's id, a threshold or degree below the
/// minimum, or a (degree, threshold) whose split-view bound at this client's own assumed collusion is worse than
/// 2^−<see cref="SecurityBits"/> — is refused with the reason. Options-shaped: mutable, usable when bound from empty
/// configuration.
/// </summary>
public sealed class SecureAggregationPolicy
{
    /// <summary>Gets or sets the smallest Shamir threshold t accepted.</summary>
    /// <value>The default value is 2 (a 1-of-k share is the secret itself).</value>
    public int MinimumThreshold { get; set; } = 2;

    /// <summary>Gets or sets the smallest graph degree k accepted (n − 1 on the complete graph of SecAgg).</summary>
    /// <value>The default value is 2.</value>
    public int MinimumDegree { get; set; } = 2;

    /// <summary>
    /// Gets or sets γ, the fraction of the cohort this client assumes may collude with the server. The client recomputes
    /// the split-view bound for the proposed (n, k, t) with c = ⌊γn⌋ colluders: deterministic on the complete graph
    /// (c &lt; 2t − k), the union bound n · P[Hyp(n − 1, c, k) ≥ 2t − k] ≤ 2^−σ on a sparse SecAgg+ graph.
    /// </summary>
    /// <value>The default value is 0.05 (what the coordinator plans for).</value>
    public double CorruptFraction { get; set; } = 0.05;

    /// <summary>Gets or sets σ, the statistical security in bits the sparse-graph bound must meet.</summary>
    /// <value>The default value is 40.</value>
    public int SecurityBits { get; set; } = 40;

    /// <summary>Lists what is wrong with the policy's own settings (empty when valid), each message naming the setting and its value.</summary>
    /// <returns>The problems found.</returns>
    public IReadOnlyList<string> Problems()
    {
        var problems = new List<string>();
        if (MinimumThreshold < 2)
        {
            problems.Add($"MinimumThreshold must be at least 2; got {MinimumThreshold.ToString(CultureInfo.InvariantCulture)}.");
        }

        if (MinimumDegree < 2)
        {
            problems.Add($"MinimumDegree must be at least 2; got {MinimumDegree.ToString(CultureInfo.InvariantCulture)}.");
        }

        if (CorruptFraction is < 0 or >= 1 || double.IsNaN(CorruptFraction))
        {
            problems.Add($"CorruptFraction must be in [0, 1); got {CorruptFraction.ToString("R", CultureInfo.InvariantCulture)}.");
        }

        if (SecurityBits is < 1 or > 256)
        {
            problems.Add($"SecurityBits must be between 1 and 256; got {SecurityBits.ToString(CultureInfo.InvariantCulture)}.");
        }

        return problems;
    }

    /// <summary>
    /// Checks a configuration a server proposed for this client; <see langword="null"/> when it may be joined, otherwise
    /// the reason to refuse it.
    /// </summary>
    /// <param name="config">The proposed configuration.</param>
    /// <param name="clientId">The id the server gave this client.</param>
    /// <param name="identityPublicKey">This client's ed25519 identity public key (its handshake key).</param>
    /// <returns><see langword="null"/> to accept, or why the configuration is refused.</returns>
    public string? Check(AggregationConfig config, uint clientId, ReadOnlySpan<byte> identityPublicKey)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (Problems() is { Count: > 0 } own)
        {
            throw new InvalidOperationException("the secure-aggregation policy is invalid: " + string.Join(" ", own));
        }

        try
        {
            AggregationRound.Validate(config);
        }
        catch (ArgumentException ex)
        {
            return $"the configuration is invalid: {ex.Message}";
        }

        if (config.Protocol is not (AggregationProtocol.Secagg or AggregationProtocol.SecaggPlus))
        {
            return $"protocol {config.Protocol} does not hide the input from the server";
        }

        if (!config.Active)
        {
            return "the configuration is the semi-honest variant (unsigned keys, no consistency check); a malicious server could substitute keys or show neighbours different survivor sets";
        }

        if (clientId >= config.NumClients)
        {
            return $"client id {clientId} is not below num_clients = {config.NumClients}";
        }

        if (!config.IdentityKeys[(int)clientId].Span.SequenceEqual(identityPublicKey))
        {
            return $"identity_keys[{clientId}] is not this client's identity key";
        }

        int n = (int)config.NumClients, k = (int)config.Degree, t = (int)config.Threshold;
        if (t < MinimumThreshold)
        {
            return $"threshold {t} is below the local minimum {MinimumThreshold}";
        }

        if (k < MinimumDegree)
        {
            return $"degree {k} is below the local minimum {MinimumDegree}";
        }

        int corrupt = SecAggParameters.Count(CorruptFraction, n);
        if (k == n - 1)
        {
            if (corrupt >= (2 * t) - k)
            {
                return $"on the complete graph of {n} clients, t = {t} lets {corrupt} colluders (γ = {CorruptFraction.ToString("R", CultureInfo.InvariantCulture)}) complete a split view; t > (k + c)/2 = {((k + corrupt) / 2.0).ToString("R", CultureInfo.InvariantCulture)} is needed";
            }

            return null;
        }

        double bound = SecAggParameters.Log2SplitViewBound(n, k, t, corrupt);
        if (bound > -SecurityBits)
        {
            return $"(k, t) = ({k}, {t}) for n = {n}: the split-view bound with {corrupt} colluders is 2^{bound.ToString("F1", CultureInfo.InvariantCulture)}, worse than 2^-{SecurityBits}";
        }

        return null;
    }
}
