using NearML.Core;

namespace NearML.Hosting.Jobs;

/// <summary>
/// A job setting cannot be honoured: an unknown model architecture or update encoding, a malformed model
/// configuration, a shard id outside the dataset, or a dataset that does not match the job's manifest root.
/// </summary>
public sealed class JobConfigurationException : NearMLException
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="message">What is wrong, naming the offending value.</param>
    public JobConfigurationException(string message) : base(message)
    {
    }

    /// <summary>Initializes a new instance with its cause.</summary>
    /// <param name="message">What is wrong, naming the offending value.</param>
    /// <param name="innerException">The cause.</param>
    public JobConfigurationException(string message, Exception? innerException) : base(message, innerException)
    {
    }
}
