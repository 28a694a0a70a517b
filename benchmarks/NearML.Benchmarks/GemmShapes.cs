namespace NearML.Benchmarks;

/// <summary>The GEMM workloads of ../shared/bench/pytorch/bench_gemm.py, with the same names.</summary>
internal static class GemmShapes
{
    /// <summary>(name, M, K, N, transA, transB): C (M×N) = op(A) (M×K) · op(B) (K×N).</summary>
    public static readonly (string Name, int M, int K, int N, bool TransA, bool TransB)[] All =
    [
        ("square_256", 256, 256, 256, false, false),
        ("square_512", 512, 512, 512, false, false),
        ("square_1024", 1024, 1024, 1024, false, false),
        ("square_2048", 2048, 2048, 2048, false, false),
        ("mlp_b64_fc1_fwd", 64, 784, 256, false, false),
        ("mlp_b128_fc1_fwd", 128, 784, 256, false, false),
        ("mlp_b128_fc2_fwd", 128, 256, 256, false, false),
        ("mlp_b128_fc2_dX", 128, 256, 256, false, true),
        ("mlp_b128_fc1_dW", 784, 128, 256, true, false),
        ("cnn_b64_fc1_fwd", 64, 1600, 128, false, false),
        ("gpt_2048x256@256x1024", 2048, 256, 1024, false, false),
        ("gpt_qkv_fwd", 4096, 128, 384, false, false),
        ("gpt_mlpup_fwd", 4096, 128, 512, false, false),
        ("gpt_mlpdn_fwd", 4096, 512, 128, false, false),
        ("gpt_mlpup_dX", 4096, 512, 128, false, true),
        ("gpt_mlpup_dW", 512, 4096, 128, true, false),
    ];

    /// <summary>The shapes whose name contains one of the comma-separated substrings of <paramref name="only"/> (all when null).</summary>
    public static (string Name, int M, int K, int N, bool TransA, bool TransB)[] Select(string? only)
    {
        var keys = only?.Split(',', StringSplitOptions.RemoveEmptyEntries);
        return All.Where(s => keys is null || keys.Any(k => s.Name.Contains(k, StringComparison.Ordinal))).ToArray();
    }
}
