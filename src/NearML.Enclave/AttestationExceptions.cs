using NearML.Core;

namespace NearML.Enclave;

/// <summary>
/// TEE evidence (a TDX quote, an SEV-SNP report, an event log, a certificate or collateral document) is malformed:
/// truncated, oversized, or carrying an inconsistent length or an unsupported version. The message names the field and offset.
/// </summary>
public sealed class AttestationFormatException : InvalidDataFormatException
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="source">What was being parsed, for example <c>"TDX quote"</c>.</param>
    /// <param name="field">The name of the offending field, for example <c>"signature_data_len"</c>.</param>
    /// <param name="offset">The byte offset of the field, or -1 if not applicable.</param>
    /// <param name="message">What is wrong with the field.</param>
    /// <param name="innerException">The underlying cause, if any.</param>
    public AttestationFormatException(string source, string field, long offset, string message, Exception? innerException = null)
        : base(source, offset, $"{field}: {message}", innerException)
    {
        Field = field;
    }

    /// <summary>Gets the name of the offending field.</summary>
    public string Field { get; }
}

/// <summary>
/// Attestation inputs that are well-formed bytes but cannot be used: collateral of the wrong kind, a missing trust anchor,
/// an unreadable provider interface, or a policy file that does not validate.
/// </summary>
public sealed class AttestationException : NearMLException
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="message">What went wrong, naming the offending input.</param>
    /// <param name="isTransient">Whether retrying the same operation may succeed (for example a provider race).</param>
    /// <param name="innerException">The underlying cause, if any.</param>
    public AttestationException(string message, bool isTransient = false, Exception? innerException = null)
        : base(message, innerException)
    {
        IsTransient = isTransient;
    }

    /// <inheritdoc />
    public override bool IsTransient { get; }
}
