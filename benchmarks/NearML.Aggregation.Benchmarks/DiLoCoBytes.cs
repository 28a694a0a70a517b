using System.Globalization;

namespace NearML.Aggregation.Benchmarks;

/// <summary>
/// Bytes per worker per round for a DiLoCo-sized pseudo-gradient: int8 exchange (1 byte + one fp32 scale per 256 entries)
/// vs secure aggregation in the small ring b = B + ⌈log2 n⌉ (bit-packed), plus the relative error of the decoded mean on
/// synthetic Gaussian pseudo-gradients (clip at 4σ, stochastic rounding). `diloco [--params 124000000]`.
/// </summary>
internal static class DiLoCoBytes
{
    public static int Run(string[] args)
    {
        int i = Array.IndexOf(args, "--params");
        long parameters = i >= 0 ? long.Parse(args[i + 1], CultureInfo.InvariantCulture) : 124_000_000;
        const int Sample = 200_000;
        Console.WriteLine($"| workers n | B | ring b | secure bytes/worker | int8 bytes/worker | secure / int8 | rel. error of mean (measured, {Sample:N0} entries) |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        foreach (int n in new[] { 8, 16, 64 })
        {
            foreach (int valueBits in new[] { 8, 6 })
            {
                var enc = new FixedPointEncoder(4f, valueBits, n, rounding: RoundingMode.Stochastic);
                // Protocol overhead per worker (keys, encrypted shares, unmasking shares, framing) for SecAgg+ with
                // k = min(n−1, 22): ~ 2·32 + k·(108 + 8) + k·(40 + 8) + 64 bytes.
                int k = Math.Min(n - 1, 22);
                long overhead = 64 + (k * 116) + (k * 48) + 64;
                long secure = (((parameters + 1) * enc.RingBits) + 7) / 8 + overhead;
                long int8 = parameters + ((parameters + 255) / 256 * 4);
                double err = MeasureError(enc, n, Sample);
                Console.WriteLine($"| {n} | {valueBits} | {enc.RingBits} | {secure:N0} | {int8:N0} | {(double)secure / int8:F3}× | {err:P2} |");
            }
        }

        return 0;
    }

    private static double MeasureError(FixedPointEncoder enc, int n, int len)
    {
        var rng = new Random(7);
        var exact = new double[len];
        var sum = new uint[len + 1];
        var buf = new uint[len + 1];
        var x = new float[len];
        for (int c = 0; c < n; c++)
        {
            for (int j = 0; j < len; j++)
            {
                // Box–Muller, σ = 1.
                double u1 = 1 - rng.NextDouble(), u2 = rng.NextDouble();
                x[j] = (float)(Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
                exact[j] += x[j] / n;
            }

            enc.Encode(x, 1, buf, rng);
            for (int j = 0; j <= len; j++)
            {
                sum[j] += buf[j];
            }
        }

        var mean = new float[len];
        enc.DecodeMean(sum, mean);
        double num = 0, den = 0;
        for (int j = 0; j < len; j++)
        {
            num += (mean[j] - exact[j]) * (mean[j] - exact[j]);
            den += exact[j] * exact[j];
        }

        return Math.Sqrt(num / den);
    }
}
