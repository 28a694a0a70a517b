using System.Security.Cryptography;

namespace NearML.Aggregation;

/// <summary>How real values are rounded to the fixed-point grid.</summary>
public enum RoundingMode
{
    /// <summary>Round to nearest: error ≤ half a step per entry, biased for values that always round one way.</summary>
    Deterministic = 0,

    /// <summary>Round up with probability equal to the fractional part: unbiased, error &lt; one step per entry.</summary>
    Stochastic = 1,
}

/// <summary>
/// Encodes float updates as fixed-point ring elements for secure aggregation and decodes the sum back to a (weighted)
/// mean. Each entry is clipped to [−<see cref="ClipRange"/>, <see cref="ClipRange"/>], scaled to
/// q ∈ [−(2^(B−1)−1), 2^(B−1)−1] with B = <see cref="ValueBits"/>, multiplied by the client's integer weight w ≤ W, and
/// stored in two's complement in Z_{2^b} with b = B + ⌈log2(n·W)⌉, so the sum of n weighted inputs cannot overflow.
/// The last ring element of every encoded vector carries the weight, so the server learns Σw but not single weights.
/// </summary>
public sealed class FixedPointEncoder
{
    /// <summary>Initializes a new encoder.</summary>
    /// <param name="clipRange">Clip bound c &gt; 0: entries are clipped to [−c, c].</param>
    /// <param name="valueBits">Quantization bits B per entry (2..24); 8 gives int8-like resolution.</param>
    /// <param name="maxClients">Largest number of inputs n that will be summed.</param>
    /// <param name="maxWeight">Largest integer weight W a client may use (1 for an unweighted mean).</param>
    /// <param name="rounding">Rounding mode.</param>
    public FixedPointEncoder(float clipRange, int valueBits, int maxClients, int maxWeight = 1, RoundingMode rounding = RoundingMode.Deterministic)
    {
        if (!(clipRange > 0) || float.IsInfinity(clipRange))
        {
            throw new ArgumentOutOfRangeException(nameof(clipRange), clipRange, "must be finite and > 0");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(valueBits, 2);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(valueBits, 24);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxClients, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxWeight, 1);
        if (!Enum.IsDefined(rounding))
        {
            throw new ArgumentOutOfRangeException(nameof(rounding), rounding, "unknown rounding mode");
        }

        int growth = (int)Math.Ceiling(Math.Log2((double)maxClients * maxWeight));
        int ringBits = valueBits + growth;
        if (ringBits > 32)
        {
            throw new ArgumentOutOfRangeException(nameof(maxClients), $"ring needs {ringBits} bits (B={valueBits} + ⌈log2({maxClients}·{maxWeight})⌉ = {growth}); at most 32 supported");
        }

        ClipRange = clipRange;
        ValueBits = valueBits;
        MaxClients = maxClients;
        MaxWeight = maxWeight;
        Rounding = rounding;
        RingBits = ringBits;
        MaxLevel = (1 << (valueBits - 1)) - 1;
        Scale = MaxLevel / (double)clipRange;
    }

    /// <summary>Gets the clip bound c.</summary>
    public float ClipRange { get; }

    /// <summary>Gets the quantization bits B.</summary>
    public int ValueBits { get; }

    /// <summary>Gets the largest number of inputs n.</summary>
    public int MaxClients { get; }

    /// <summary>Gets the largest weight W.</summary>
    public int MaxWeight { get; }

    /// <summary>Gets the rounding mode.</summary>
    public RoundingMode Rounding { get; }

    /// <summary>Gets the ring size b in bits: B + ⌈log2(n·W)⌉.</summary>
    public int RingBits { get; }

    /// <summary>Gets the largest quantization level 2^(B−1) − 1.</summary>
    public int MaxLevel { get; }

    /// <summary>Gets the scale s = (2^(B−1) − 1)/c: one quantization step is 1/s.</summary>
    public double Scale { get; }

    /// <summary>Gets the bound on the per-entry error of a decoded mean of clipped inputs: 1/(2s) deterministic, 1/s stochastic.</summary>
    public double ErrorBound => Rounding == RoundingMode.Deterministic ? 0.5 / Scale : 1.0 / Scale;

    /// <summary>Gets the number of ring elements of an encoded vector of <paramref name="entries"/> entries (one more, for the weight).</summary>
    /// <param name="entries">Number of float entries.</param>
    /// <returns><paramref name="entries"/> + 1.</returns>
    public static int EncodedLength(int entries) => checked(entries + 1);

    /// <summary>Encodes <paramref name="values"/> with <paramref name="weight"/> into <paramref name="destination"/>.</summary>
    /// <param name="values">The update; non-finite entries are rejected.</param>
    /// <param name="weight">Integer weight in 1..<see cref="MaxWeight"/> (e.g. the sample count).</param>
    /// <param name="destination">Exactly <see cref="EncodedLength"/> ring elements.</param>
    /// <param name="random">Randomness for stochastic rounding; a CSPRNG-seeded generator when null.</param>
    public void Encode(ReadOnlySpan<float> values, int weight, Span<uint> destination, Random? random = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(weight, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(weight, MaxWeight);
        if (destination.Length != EncodedLength(values.Length))
        {
            throw new ArgumentException($"destination has {destination.Length} elements, {EncodedLength(values.Length)} expected", nameof(destination));
        }

        uint ringMask = RingBits == 32 ? uint.MaxValue : (1u << RingBits) - 1;
        double c = ClipRange, s = Scale;
        if (Rounding == RoundingMode.Stochastic)
        {
            random ??= new Random(RandomNumberGenerator.GetInt32(int.MaxValue));
        }

        for (int i = 0; i < values.Length; i++)
        {
            float v = values[i];
            if (!float.IsFinite(v))
            {
                throw new ArgumentException($"entry {i} is {v}; only finite values can be encoded", nameof(values));
            }

            double x = Math.Clamp(v, -c, c) * s;
            double r = Rounding == RoundingMode.Deterministic ? Math.Round(x, MidpointRounding.ToEven) : Math.Floor(x + random!.NextDouble());
            long q = Math.Clamp((long)r, -MaxLevel, MaxLevel) * weight;
            destination[i] = (uint)q & ringMask;
        }

        destination[values.Length] = (uint)weight;
    }

    /// <summary>Decodes a ring sum into the weighted mean Σ w_i x_i / Σ w_i.</summary>
    /// <param name="sum">The aggregated ring elements (as returned by the server), <see cref="EncodedLength"/> of the entries.</param>
    /// <param name="mean">Receives the mean; one element fewer than <paramref name="sum"/>.</param>
    /// <returns>The total weight Σ w_i.</returns>
    public long DecodeMean(ReadOnlySpan<uint> sum, Span<float> mean)
    {
        if (sum.Length != EncodedLength(mean.Length))
        {
            throw new ArgumentException($"sum has {sum.Length} elements, {EncodedLength(mean.Length)} expected", nameof(sum));
        }

        uint ringMask = RingBits == 32 ? uint.MaxValue : (1u << RingBits) - 1;
        long totalWeight = sum[mean.Length] & ringMask;
        if (totalWeight <= 0)
        {
            throw new ArgumentException("total weight in the sum is zero: no input was aggregated", nameof(sum));
        }

        double inv = 1.0 / (Scale * totalWeight);
        int shift = 32 - RingBits;
        for (int i = 0; i < mean.Length; i++)
        {
            // Sign-extend the b-bit two's complement value.
            int signed = (int)((sum[i] & ringMask) << shift) >> shift;
            mean[i] = (float)(signed * inv);
        }

        return totalWeight;
    }
}
