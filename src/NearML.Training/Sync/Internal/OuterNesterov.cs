namespace NearML.Training.Sync.Internal;

/// <summary>
/// The outer optimizer of DiLoCo: SGD with (Nesterov) momentum exactly as torch.optim.SGD computes it with
/// dampening 0 and no weight decay: buf ← μ·buf + g (buf starts at zero, which equals torch's clone on the first
/// step), d ← g + μ·buf (Nesterov) or d ← buf, p ← p − lr·d.
/// </summary>
internal static class OuterNesterov
{
    public static void Step(Span<float> parameters, ReadOnlySpan<float> gradient, Span<float> buffer, float learningRate, float momentum, bool nesterov)
    {
        for (var i = 0; i < parameters.Length; i++)
        {
            var g = gradient[i];
            float d;
            if (momentum != 0f)
            {
                var b = (momentum * buffer[i]) + g;
                buffer[i] = b;
                d = nesterov ? g + (momentum * b) : b;
            }
            else
            {
                d = g;
            }

            parameters[i] -= learningRate * d;
        }
    }
}
