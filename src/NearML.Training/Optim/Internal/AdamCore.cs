using System.Numerics.Tensors;
using NearML.Core;

namespace NearML.Training.Optim.Internal;

/// <summary>The shared Adam / AdamW update, chunked so a step touches each buffer once while it is in cache.</summary>
internal sealed class AdamCore
{
    public const string ExpAvgName = "exp_avg";
    public const string ExpAvgSqName = "exp_avg_sq";
    private const int Chunk = 4096;
    private readonly float[] _grad = new float[Chunk];
    private readonly float[] _tmp = new float[Chunk];
    private readonly float[] _num = new float[Chunk];
    private readonly bool _decoupled;

    private readonly DecaySegments _segments;

    public AdamCore(ParameterLayout layout, double beta1, double beta2, double epsilon, double weightDecay, bool decoupled, Func<TensorEntry, bool>? decayFilter)
    {
        if (!(beta1 >= 0 && beta1 < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(beta1), beta1, "Beta1 must be in [0, 1).");
        }

        if (!(beta2 >= 0 && beta2 < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(beta2), beta2, "Beta2 must be in [0, 1).");
        }

        if (!(epsilon >= 0) || !double.IsFinite(epsilon))
        {
            throw new ArgumentOutOfRangeException(nameof(epsilon), epsilon, "Epsilon must be a finite non-negative number.");
        }

        if (!(weightDecay >= 0) || !double.IsFinite(weightDecay))
        {
            throw new ArgumentOutOfRangeException(nameof(weightDecay), weightDecay, "Weight decay must be a finite non-negative number.");
        }

        Beta1 = beta1;
        Beta2 = beta2;
        Epsilon = epsilon;
        WeightDecay = weightDecay;
        _decoupled = decoupled;
        _segments = new DecaySegments(layout, decayFilter);
        ExpAvg = new ParameterSet(layout);
        ExpAvgSq = new ParameterSet(layout);
    }

    public double Beta1 { get; }

    public double Beta2 { get; }

    public double Epsilon { get; }

    public double WeightDecay { get; }

    public ParameterSet ExpAvg { get; }

    public ParameterSet ExpAvgSq { get; }

    public void Step(ParameterSet parameters, ParameterSet gradients, double lr, long step)
    {
        // Python-side scalars, in double exactly as torch/optim/adamw.py computes them, then rounded to float32
        // where they meet a float tensor.
        double t = step;
        var biasCorrection1 = 1 - Math.Pow(Beta1, t);
        var biasCorrection2 = 1 - Math.Pow(Beta2, t);
        var stepSize = lr / biasCorrection1;
        var bc2Sqrt = (float)Math.Sqrt(biasCorrection2);
        var negStepSize = (float)-stepSize;
        var decay = (float)(1 - (lr * WeightDecay));
        var b1 = (float)Beta1;
        var oneMinusB1 = (float)(1 - Beta1);
        var b2 = (float)Beta2;
        var oneMinusB2 = (float)(1 - Beta2);
        var eps = (float)Epsilon;
        var wd = (float)WeightDecay;

        var p = parameters.Buffer;
        var g = gradients.Buffer;
        var m = ExpAvg.Buffer;
        var v = ExpAvgSq.Buffer;
        foreach (var (segStart, segLength, decays) in _segments.Segments)
        {
            for (var i = segStart; i < segStart + segLength; i += Chunk)
            {
                var n = Math.Min(Chunk, segStart + segLength - i);
                var pc = p.AsSpan(i, n);
                var mc = m.AsSpan(i, n);
                var vc = v.AsSpan(i, n);
                var tmp = _tmp.AsSpan(0, n);
                ReadOnlySpan<float> gc = g.AsSpan(i, n);
                if (_decoupled)
                {
                    if (decays && decay != 1f)
                    {
                        // param.mul_(1 - lr * weight_decay)
                        TensorPrimitives.Multiply(pc, decay, pc);
                    }
                }
                else if (decays && WeightDecay != 0)
                {
                    // grad = grad.add(param, alpha=weight_decay)
                    var gd = _grad.AsSpan(0, n);
                    TensorPrimitives.FusedMultiplyAdd(pc, wd, gc, gd);
                    gc = gd;
                }

                // exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                TensorPrimitives.Multiply(mc, b1, mc);
                TensorPrimitives.FusedMultiplyAdd(gc, oneMinusB1, mc, mc);

                // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2): fma(value·g, g, v)
                TensorPrimitives.Multiply(vc, b2, vc);
                TensorPrimitives.Multiply(gc, oneMinusB2, tmp);
                TensorPrimitives.FusedMultiplyAdd(tmp, gc, vc, vc);

                // denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
                TensorPrimitives.Sqrt(vc, tmp);
                TensorPrimitives.Divide(tmp, bc2Sqrt, tmp);
                TensorPrimitives.Add(tmp, eps, tmp);

                // param.addcdiv_(exp_avg, denom, value=-step_size): p + (value·m) / denom
                var num = _num.AsSpan(0, n);
                TensorPrimitives.Multiply(mc, negStepSize, num);
                TensorPrimitives.Divide(num, tmp, tmp);
                TensorPrimitives.Add(pc, tmp, pc);
            }
        }
    }

    public Dictionary<string, ParameterSet> ExportBuffers() => new(StringComparer.Ordinal)
    {
        [ExpAvgName] = ExpAvg.Clone(),
        [ExpAvgSqName] = ExpAvgSq.Clone(),
    };

    public Dictionary<string, double> Hyperparameters() => new(StringComparer.Ordinal)
    {
        ["beta1"] = Beta1,
        ["beta2"] = Beta2,
        ["eps"] = Epsilon,
        ["weight_decay"] = WeightDecay,
        ["decayed_tensors"] = _segments.DecayedTensors,
    };

    public void Import(ParameterSet expAvg, ParameterSet expAvgSq)
    {
        ExpAvg.CopyFrom(expAvg);
        ExpAvgSq.CopyFrom(expAvgSq);
    }
}
