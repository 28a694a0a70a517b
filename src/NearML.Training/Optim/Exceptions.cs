using System.Globalization;
using NearML.Core;

namespace NearML.Training.Optim;

/// <summary>A gradient handed to an optimizer contains NaN or ±∞; the parameters were not changed.</summary>
public sealed class NonFiniteGradientException : NearMLException
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="tensorName">The tensor holding the first non-finite element.</param>
    /// <param name="index">Its index within the tensor (row-major).</param>
    /// <param name="value">The offending value.</param>
    public NonFiniteGradientException(string tensorName, int index, float value)
        : base(string.Create(CultureInfo.InvariantCulture, $"Gradient of tensor '{tensorName}' is not finite at index {index} (value {value}); the optimizer step was refused and no parameter was changed."))
    {
        TensorName = tensorName;
        Index = index;
        Value = value;
    }

    /// <summary>Gets the name of the tensor holding the first non-finite element.</summary>
    public string TensorName { get; }

    /// <summary>Gets the element's index within its tensor.</summary>
    public int Index { get; }

    /// <summary>Gets the offending value (NaN, +∞ or −∞).</summary>
    public float Value { get; }
}

/// <summary>Optimizer state cannot be imported: wrong kind, missing buffer, or an invalid scalar.</summary>
public sealed class InvalidOptimizerStateException : NearMLException
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="message">What is wrong, naming the field.</param>
    public InvalidOptimizerStateException(string message) : base(message) { }
}
