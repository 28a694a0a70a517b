using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace NearML.Training.Tensors.Internal;

/// <summary>Vectorised element-wise kernels that <see cref="System.Numerics.Tensors.TensorPrimitives"/> does not offer.</summary>
internal static class Simd
{
    // Abramowitz & Stegun 7.1.26, the form PyTorch's vectorised CPU erf uses (|error| ≤ 1.5e-7).
    private const float ErfP = 0.3275911f;
    private const float ErfA1 = 0.254829592f;
    private const float ErfA2 = -0.284496736f;
    private const float ErfA3 = 1.421413741f;
    private const float ErfA4 = -1.453152027f;
    private const float ErfA5 = 1.061405429f;
    private const float Sqrt1_2 = 0.70710678118654752440f;
    private const float GeluBeta = 0.39894228040143267794f; // M_2_SQRTPI * M_SQRT1_2 * 0.5
    private const float Sqrt2OverPi = 0.79788456080286535588f;
    private const float GeluTanhCoef = 0.044715f;

    public static int IndexOfNonFinite(ReadOnlySpan<float> x)
    {
        var i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var vs = MemoryMarshal.Cast<float, Vector<float>>(x);
            for (var v = 0; v < vs.Length; v++)
            {
                var d = vs[v] - vs[v];
                if (!Vector.EqualsAll(d, Vector<float>.Zero))
                {
                    break;
                }

                i += Vector<float>.Count;
            }
        }

        for (; i < x.Length; i++)
        {
            if (!float.IsFinite(x[i]))
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>g ← g where y &gt; 0 else 0.</summary>
    public static void ReluBackwardInPlace(Span<float> g, ReadOnlySpan<float> y)
    {
        var i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var gv = MemoryMarshal.Cast<float, Vector<float>>(g);
            var yv = MemoryMarshal.Cast<float, Vector<float>>(y[..g.Length]);
            for (var v = 0; v < gv.Length; v++)
            {
                gv[v] = Vector.ConditionalSelect(Vector.GreaterThan(yv[v], Vector<float>.Zero), gv[v], Vector<float>.Zero);
            }

            i = gv.Length * Vector<float>.Count;
        }

        for (; i < g.Length; i++)
        {
            if (!(y[i] > 0f))
            {
                g[i] = 0f;
            }
        }
    }

    /// <summary>x ← max(x + b, 0), NaN propagating like <c>TensorPrimitives.Max(x + b, 0)</c>.</summary>
    public static void AddRelu(Span<float> x, float b)
    {
        var i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var xv = MemoryMarshal.Cast<float, Vector<float>>(x);
            var bv = new Vector<float>(b);
            for (var v = 0; v < xv.Length; v++)
            {
                var s = xv[v] + bv;

                // keep s where s > 0 or s is NaN (s != s), else 0
                var keep = Vector.BitwiseOr(Vector.GreaterThan(s, Vector<float>.Zero), Vector.OnesComplement(Vector.Equals(s, s)));
                xv[v] = Vector.ConditionalSelect(keep, s, Vector<float>.Zero);
            }

            i = xv.Length * Vector<float>.Count;
        }

        for (; i < x.Length; i++)
        {
            var s = x[i] + b;
            x[i] = s > 0f || float.IsNaN(s) ? s : 0f;
        }
    }

    /// <summary>dst ← dy where y &gt; 0 else 0.</summary>
    public static void ReluBackward(ReadOnlySpan<float> dy, ReadOnlySpan<float> y, Span<float> dst, bool accumulate)
    {
        for (var i = 0; i < dst.Length; i++)
        {
            var v = y[i] > 0f ? dy[i] : 0f;
            dst[i] = accumulate ? dst[i] + v : v;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector<float> Erf(Vector<float> x)
    {
        var signMask = new Vector<float>(-0f);
        var sign = x & signMask;
        var ax = Vector.AndNot(x, signMask);
        var t = Vector<float>.One / Vector.FusedMultiplyAdd(new Vector<float>(ErfP), ax, Vector<float>.One);
        var r = Vector.FusedMultiplyAdd(new Vector<float>(ErfA5), t, new Vector<float>(ErfA4));
        r = Vector.FusedMultiplyAdd(r, t, new Vector<float>(ErfA3));
        r = Vector.FusedMultiplyAdd(r, t, new Vector<float>(ErfA2));
        r = Vector.FusedMultiplyAdd(r, t, new Vector<float>(ErfA1));
        var e = Vector.Exp(-(x * x));
        var res = Vector.FusedMultiplyAdd(-e * t, r, Vector<float>.One);
        return res | sign;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Erf(float x)
    {
        var ax = MathF.Abs(x);
        var t = 1f / MathF.FusedMultiplyAdd(ErfP, ax, 1f);
        var r = MathF.FusedMultiplyAdd(ErfA5, t, ErfA4);
        r = MathF.FusedMultiplyAdd(r, t, ErfA3);
        r = MathF.FusedMultiplyAdd(r, t, ErfA2);
        r = MathF.FusedMultiplyAdd(r, t, ErfA1);
        var e = MathF.Exp(-(x * x));
        var res = MathF.FusedMultiplyAdd(-e * t, r, 1f);
        return MathF.CopySign(res, x);
    }

    /// <summary>y ← x·½·(1 + erf(x/√2)) (exact GELU).</summary>
    public static void GeluErf(ReadOnlySpan<float> x, Span<float> y)
    {
        var i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var xv = MemoryMarshal.Cast<float, Vector<float>>(x[..y.Length]);
            var yv = MemoryMarshal.Cast<float, Vector<float>>(y);
            var half = new Vector<float>(0.5f);
            var a = new Vector<float>(Sqrt1_2);
            for (var v = 0; v < yv.Length; v++)
            {
                var xx = xv[v];
                yv[v] = xx * half * (Vector<float>.One + Erf(xx * a));
            }

            i = yv.Length * Vector<float>.Count;
        }

        for (; i < y.Length; i++)
        {
            var xx = x[i];
            y[i] = xx * 0.5f * (1f + Erf(xx * Sqrt1_2));
        }
    }

    /// <summary>g ← g·(Φ(x) + x·φ(x)) (exact GELU derivative).</summary>
    public static void GeluErfBackwardInPlace(Span<float> g, ReadOnlySpan<float> x)
    {
        var i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var xv = MemoryMarshal.Cast<float, Vector<float>>(x[..g.Length]);
            var gv = MemoryMarshal.Cast<float, Vector<float>>(g);
            var half = new Vector<float>(0.5f);
            var a = new Vector<float>(Sqrt1_2);
            var beta = new Vector<float>(GeluBeta);
            var mhalf = new Vector<float>(-0.5f);
            for (var v = 0; v < gv.Length; v++)
            {
                var xx = xv[v];
                var cdf = half * (Vector<float>.One + Erf(xx * a));
                var pdf = beta * Vector.Exp(xx * xx * mhalf);
                gv[v] *= Vector.FusedMultiplyAdd(xx, pdf, cdf);
            }

            i = gv.Length * Vector<float>.Count;
        }

        for (; i < g.Length; i++)
        {
            var xx = x[i];
            var cdf = 0.5f * (1f + Erf(xx * Sqrt1_2));
            var pdf = GeluBeta * MathF.Exp(xx * xx * -0.5f);
            g[i] *= cdf + (xx * pdf);
        }
    }

    /// <summary>y ← ½x(1 + tanh(√(2/π)(x + 0.044715x³))).</summary>
    public static void GeluTanh(ReadOnlySpan<float> x, Span<float> y)
    {
        for (var i = 0; i < y.Length; i++)
        {
            var xx = x[i];
            var inner = Sqrt2OverPi * (xx + (GeluTanhCoef * xx * xx * xx));
            y[i] = 0.5f * xx * (1f + MathF.Tanh(inner));
        }
    }

    /// <summary>g ← g·d/dx GELU_tanh(x).</summary>
    public static void GeluTanhBackwardInPlace(Span<float> g, ReadOnlySpan<float> x)
    {
        for (var i = 0; i < g.Length; i++)
        {
            var xx = x[i];
            var x2 = xx * xx;
            var inner = Sqrt2OverPi * (xx + (GeluTanhCoef * x2 * xx));
            var t = MathF.Tanh(inner);
            var dinner = Sqrt2OverPi * (1f + (3f * GeluTanhCoef * x2));
            g[i] *= (0.5f * (1f + t)) + (0.5f * xx * (1f - (t * t)) * dinner);
        }
    }

    /// <summary>Adds each row of <paramref name="g"/> (rows of <paramref name="n"/>) into <paramref name="acc"/>.</summary>
    public static void SumRowsInto(ReadOnlySpan<float> g, int n, Span<float> acc)
    {
        var rows = g.Length / n;
        for (var r = 0; r < rows; r++)
        {
            System.Numerics.Tensors.TensorPrimitives.Add(acc, g.Slice(r * n, n), acc);
        }
    }
}
