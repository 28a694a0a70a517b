using System.Numerics.Tensors;
using NearML.Core;

namespace NearML.Training.Optim.Internal;

/// <summary>Cheap non-finite scan: one SIMD sum per block; the exact position is searched only when a sum is not finite.</summary>
internal static class FiniteCheck
{
    private const int Block = 16384;

    public static (string Tensor, int Index)? FindNonFinite(ParameterSet set)
    {
        var data = set.Buffer;
        for (var i = 0; i < data.Length; i += Block)
        {
            var span = data.AsSpan(i, Math.Min(Block, data.Length - i));

            // A finite sum proves every element finite (NaN and ±∞ propagate); a non-finite sum may also be an overflow
            // of finite values, so the exact scan below decides.
            if (!float.IsFinite(TensorPrimitives.Sum(span)))
            {
                var hit = set.FindNonFinite();
                if (hit is not null)
                {
                    return hit;
                }

                return null;
            }
        }

        return null;
    }
}
