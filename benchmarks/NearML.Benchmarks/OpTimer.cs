using NearML.Training.Tensors;

namespace NearML.Benchmarks;

/// <summary>
/// Times one op alone for the `compare profile-*` diagnostics: forward, then forward and backward, on its own tape with
/// random inputs in [−1, 1), median over the repeats after the warm-up ones.
/// </summary>
internal static class OpTimer
{
    /// <summary>Median milliseconds of the forward pass and of forward plus backward.</summary>
    public static (double Forward, double Both) Time(Random rng, int[] shape, bool inputGrad, Func<Tape, Tensor, Tensor> op, int repeats, int warmup, float gradScale)
    {
        var x = Tensor.Create(inputGrad, shape);
        var xd = x.Data;
        for (var i = 0; i < xd.Length; i++)
        {
            xd[i] = (float)(rng.NextDouble() * 2) - 1;
        }

        var tape = new Tape();
        float[]? grad = null;
        var fwd = new List<double>();
        var both = new List<double>();
        for (var r = 0; r < repeats + warmup; r++)
        {
            tape.Reset();
            var t0 = System.Diagnostics.Stopwatch.GetTimestamp();
            var y = op(tape, x);
            var tf = System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            grad ??= Enumerable.Range(0, y.Length).Select(i => (float)Math.Sin(i) * gradScale).ToArray();
            tape.Backward(y, grad);
            var tb = System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            if (r >= warmup)
            {
                fwd.Add(tf);
                both.Add(tb);
            }
        }

        fwd.Sort();
        both.Sort();
        return (Median(fwd), Median(both));
    }

    /// <summary>
    /// Times <paramref name="step"/> (after <paramref name="prepare"/>, which is not timed) <paramref name="warmup"/> +
    /// <paramref name="steps"/> times; returns the sorted wall and process-CPU milliseconds of the timed ones.
    /// </summary>
    public static (List<double> Wall, List<double> Cpu) Steps(int warmup, int steps, Action<int> prepare, Action step)
    {
        using var process = System.Diagnostics.Process.GetCurrentProcess();
        var wall = new List<double>();
        var cpu = new List<double>();
        for (var s = 0; s < warmup + steps; s++)
        {
            prepare(s);
            process.Refresh();
            var c0 = process.TotalProcessorTime;
            var t0 = System.Diagnostics.Stopwatch.GetTimestamp();
            step();
            var dt = System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            process.Refresh();
            if (s >= warmup)
            {
                wall.Add(dt);
                cpu.Add((process.TotalProcessorTime - c0).TotalMilliseconds);
            }
        }

        wall.Sort();
        cpu.Sort();
        return (wall, cpu);
    }

    /// <summary>The median of an already sorted list.</summary>
    public static double Median(List<double> sorted) =>
        sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
}
