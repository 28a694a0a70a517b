namespace NearML.Core;

/// <summary>
/// Base class of every exception NearML throws on purpose. Catch this to handle any NearML failure;
/// check <see cref="IsTransient"/> to decide whether retrying the same operation can succeed.
/// </summary>
public abstract class NearMLException : Exception
{
    /// <summary>Initializes a new instance with a message.</summary>
    /// <param name="message">What went wrong, naming the offending input.</param>
    protected NearMLException(string message) : base(message) { }

    /// <summary>Initializes a new instance with a message and the underlying cause.</summary>
    /// <param name="message">What went wrong, naming the offending input.</param>
    /// <param name="innerException">The exception that caused this one.</param>
    protected NearMLException(string message, Exception? innerException) : base(message, innerException) { }

    /// <summary>Gets a value indicating whether retrying the same operation may succeed.</summary>
    /// <value>The default value is <see langword="false"/>.</value>
    public virtual bool IsTransient => false;
}

/// <summary>Two parameter sets (or a set and a tensor) do not share the same names, shapes or order.</summary>
public sealed class LayoutMismatchException : NearMLException
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="message">Which names or shapes differ.</param>
    public LayoutMismatchException(string message) : base(message) { }
}

/// <summary>Bytes that claim to be in some format (safetensors, IDX, a frame) are not, or are truncated.</summary>
public class InvalidDataFormatException : NearMLException
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="source">The file or stream that held the bytes (may be a description such as "stream").</param>
    /// <param name="offset">The byte offset at which the problem was found, or -1 if unknown.</param>
    /// <param name="message">What is wrong.</param>
    /// <param name="innerException">The underlying cause, if any.</param>
    public InvalidDataFormatException(string source, long offset, string message, Exception? innerException = null)
        : base(offset >= 0 ? $"{source}: at byte {offset}: {message}" : $"{source}: {message}", innerException)
    {
        Source = source;
        Offset = offset;
    }

    /// <summary>Gets the file or stream that held the bytes.</summary>
    public new string Source { get; }

    /// <summary>Gets the byte offset at which the problem was found, or -1.</summary>
    public long Offset { get; }
}
