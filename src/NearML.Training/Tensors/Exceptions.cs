using NearML.Core;

namespace NearML.Training.Tensors;

/// <summary>An operation received tensors whose shapes do not fit together; the message names both shapes.</summary>
public sealed class ShapeMismatchException : NearMLException
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="message">Which shapes clash, and in which operation.</param>
    public ShapeMismatchException(string message) : base(message) { }
}

/// <summary>A NaN or infinity appeared where finite values are required (an input batch, a loss, a gradient).</summary>
public sealed class NonFiniteValueException : NearMLException
{
    /// <summary>Initializes a new instance.</summary>
    /// <param name="what">What held the value (e.g. "input", "loss", a parameter name).</param>
    /// <param name="index">The element index of the first non-finite value, or -1.</param>
    /// <param name="value">The offending value.</param>
    public NonFiniteValueException(string what, int index, float value)
        : base(index >= 0 ? $"{what} has a non-finite value {value} at element {index}." : $"{what} is non-finite ({value}).")
    {
        What = what;
        Index = index;
        Value = value;
    }

    /// <summary>Gets what held the value.</summary>
    public string What { get; }

    /// <summary>Gets the element index of the first non-finite value, or -1.</summary>
    public int Index { get; }

    /// <summary>Gets the offending value.</summary>
    public float Value { get; }
}
