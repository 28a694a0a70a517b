namespace NearML.Enclave.Internal;

/// <summary>Checks a leaf-first certificate chain ending in a self-signed root that must match a pinned fingerprint.</summary>
internal static class ChainVerifier
{
    /// <summary>
    /// Adds named checks for each link, the root pin and validity at <paramref name="at"/>; returns whether all passed.
    /// Links are checked top-down and only under a trusted issuer: the root's fingerprint is compared first (no public-key
    /// operation), and a certificate's signature is verified only when its issuer is the pinned root or was itself verified.
    /// A link below a broken one is reported as failed ("not checked"), so a forged or mutated chain costs at most one
    /// signature verification, never one per certificate.
    /// </summary>
    /// <param name="checks">Where the checks go.</param>
    /// <param name="prefix">Check-name prefix, for example <c>pck-chain</c>.</param>
    /// <param name="chain">Leaf first, root last.</param>
    /// <param name="pinnedRoots">Accepted root fingerprints (SHA-256 of the DER).</param>
    /// <param name="at">Evaluation time.</param>
    /// <param name="names">Names of the links, leaf first.</param>
    /// <param name="signaturesTrusted">Whether every link verified up to a pinned root (validity not considered).</param>
    public static bool Check(List<AttestationCheck> checks, string prefix, IReadOnlyList<Cert> chain, IReadOnlyCollection<byte[]> pinnedRoots, DateTimeOffset at, string[] names,
        out bool signaturesTrusted)
    {
        signaturesTrusted = false;
        if (chain.Count < 2)
        {
            checks.Add(new AttestationCheck($"{prefix}.structure", false, $"expected at least 2 certificates (leaf … root), found {chain.Count}"));
            return false;
        }

        Cert root = chain[^1];
        bool pinned = pinnedRoots.Any(p => p.AsSpan().SequenceEqual(root.Fingerprint));
        var links = new AttestationCheck[chain.Count];
        bool trusted = pinned;
        string? untrustedBecause = pinned ? null : "the root is not pinned";
        for (int i = chain.Count - 1; i >= 0; i--)
        {
            Cert c = chain[i];
            bool isRoot = i == chain.Count - 1;
            Cert issuer = isRoot ? c : chain[i + 1];
            string name = i < names.Length ? names[i] : $"cert{i}";
            if (!trusted)
            {
                links[i] = new AttestationCheck($"{prefix}.{name}-signature", false, $"not checked: {untrustedBecause}");
                continue;
            }

            bool signed = c.IsSignedBy(issuer);
            links[i] = new AttestationCheck($"{prefix}.{name}-signature", signed,
                signed ? $"'{c.Subject}' is signed by '{issuer.Subject}'"
                       : $"signature of '{c.Subject}' does not verify with the key of '{issuer.Subject}'{(isRoot ? " (root self-signature)" : string.Empty)}");
            if (!signed)
            {
                trusted = false;
                untrustedBecause = $"its issuer chain is broken above it ({name})";
            }
        }

        checks.AddRange(links);
        bool ok = trusted;
        signaturesTrusted = trusted;

        string? notCa = chain.Skip(1).Where(c => !c.IsCa).Select(c => c.Subject).FirstOrDefault();
        ok &= notCa is null;
        signaturesTrusted &= notCa is null;
        checks.Add(new AttestationCheck($"{prefix}.issuers-are-ca", notCa is null,
            notCa is null ? "every issuer has basicConstraints CA:TRUE" : $"issuer '{notCa}' is not a CA (basicConstraints CA:TRUE missing)"));

        ok &= pinned;
        checks.Add(new AttestationCheck($"{prefix}.root-pinned", pinned,
            $"root SHA-256 fingerprint {Convert.ToHexString(root.Fingerprint)} {(pinned ? "matches a pinned root" : "is not pinned")}"));

        string? expired = null;
        foreach (Cert c in chain)
        {
            if (!c.IsValidAt(at))
            {
                expired ??= $"'{c.Subject}' is valid {c.NotBefore:O} to {c.NotAfter:O}, not at {at:O} (certificate has expired or is not yet valid)";
            }
        }

        ok &= expired is null;
        checks.Add(new AttestationCheck($"{prefix}.validity", expired is null, expired ?? $"every certificate is valid at {at:O}"));
        return ok;
    }

    /// <inheritdoc cref="Check(List{AttestationCheck}, string, IReadOnlyList{Cert}, IReadOnlyCollection{byte[]}, DateTimeOffset, string[], out bool)"/>
    public static bool Check(List<AttestationCheck> checks, string prefix, IReadOnlyList<Cert> chain, IReadOnlyCollection<byte[]> pinnedRoots, DateTimeOffset at, string[] names) =>
        Check(checks, prefix, chain, pinnedRoots, at, names, out _);
}
