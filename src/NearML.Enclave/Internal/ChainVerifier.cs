namespace NearML.Enclave.Internal;

/// <summary>Checks a leaf-first certificate chain ending in a self-signed root that must match a pinned fingerprint.</summary>
internal static class ChainVerifier
{
    /// <summary>Adds named checks for each link, the root pin and validity at <paramref name="at"/>; returns whether all passed.</summary>
    public static bool Check(List<AttestationCheck> checks, string prefix, IReadOnlyList<Cert> chain, IReadOnlyCollection<byte[]> pinnedRoots, DateTimeOffset at, string[] names)
    {
        bool ok = true;
        if (chain.Count < 2)
        {
            checks.Add(new AttestationCheck($"{prefix}.structure", false, $"expected at least 2 certificates (leaf … root), found {chain.Count}"));
            return false;
        }

        for (int i = 0; i < chain.Count; i++)
        {
            Cert c = chain[i];
            bool isRoot = i == chain.Count - 1;
            Cert issuer = isRoot ? c : chain[i + 1];
            string name = i < names.Length ? names[i] : $"cert{i}";
            bool signed = c.IsSignedBy(issuer);
            ok &= signed;
            checks.Add(new AttestationCheck($"{prefix}.{name}-signature", signed,
                signed ? $"'{c.Subject}' is signed by '{issuer.Subject}'"
                       : $"signature of '{c.Subject}' does not verify with the key of '{issuer.Subject}'{(isRoot ? " (root self-signature)" : string.Empty)}"));
        }

        string? notCa = chain.Skip(1).Where(c => !c.IsCa).Select(c => c.Subject).FirstOrDefault();
        ok &= notCa is null;
        checks.Add(new AttestationCheck($"{prefix}.issuers-are-ca", notCa is null,
            notCa is null ? "every issuer has basicConstraints CA:TRUE" : $"issuer '{notCa}' is not a CA (basicConstraints CA:TRUE missing)"));

        Cert root = chain[^1];
        bool pinned = pinnedRoots.Any(p => p.AsSpan().SequenceEqual(root.Fingerprint));
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
}
