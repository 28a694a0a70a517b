using NearML.Core;

namespace NearML.Sharding;

/// <summary>A shard's bytes do not match the manifest (wrong length or SHA-256), or the shard is missing.</summary>
public sealed class ShardIntegrityException : NearMLException
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="shardIndex">The shard.</param>
    /// <param name="location">Where the shard was read from.</param>
    /// <param name="message">What does not match.</param>
    /// <param name="innerException">The underlying cause, if any.</param>
    public ShardIntegrityException(int shardIndex, string location, string message, Exception? innerException = null)
        : base($"Shard {shardIndex} ({location}): {message}", innerException)
    {
        ShardIndex = shardIndex;
        Location = location;
    }

    /// <summary>Gets the shard's index.</summary>
    public int ShardIndex { get; }

    /// <summary>Gets where the shard was read from.</summary>
    public string Location { get; }

    /// <summary>Gets a value indicating whether re-fetching may help (a corrupt or missing copy can be replaced).</summary>
    public override bool IsTransient => true;
}
