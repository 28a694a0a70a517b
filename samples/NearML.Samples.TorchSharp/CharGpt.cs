using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace NearML.Samples.TorchSharp;

/// <summary>The shape of a <see cref="CharGpt"/>.</summary>
/// <param name="Vocabulary">Distinct characters (the text's vocabulary).</param>
/// <param name="Context">Tokens per window (the longest input).</param>
/// <param name="DModel">Embedding width.</param>
/// <param name="Layers">Transformer blocks.</param>
/// <param name="Heads">Attention heads (must divide <paramref name="DModel"/>).</param>
internal sealed record CharGptConfig(int Vocabulary, int Context, int DModel, int Layers, int Heads)
{
    /// <summary>Validates the shape.</summary>
    /// <exception cref="ArgumentException">A dimension is not positive, or the heads do not divide the width.</exception>
    public void Validate()
    {
        if (Vocabulary < 2 || Context < 2 || DModel < 1 || Layers < 1 || Heads < 1)
        {
            throw new ArgumentException($"model shape {this}: vocabulary and context must be at least 2, width, layers and heads positive.");
        }

        if (DModel % Heads != 0)
        {
            throw new ArgumentException($"model width {DModel} is not a multiple of the {Heads} heads.");
        }
    }
}

/// <summary>
/// A character-level GPT in TorchSharp: token + position embeddings, <c>Layers</c> pre-LayerNorm transformer blocks (causal
/// multi-head self-attention, a 4× GELU MLP, residual connections), a final LayerNorm and a linear head. Input: int64 tokens
/// <c>[N, T]</c>; output: logits <c>[N, T, vocabulary]</c>. Parameter names follow PyTorch's <c>state_dict</c> keys
/// (<c>tok_emb.weight</c>, <c>blocks.0.attn.qkv.weight</c>, …). Initialisation as GPT-2: weights N(0, 0.02), the residual
/// projections N(0, 0.02/√(2·Layers)), biases 0, LayerNorms 1/0.
/// </summary>
internal sealed class CharGpt : nn.Module<Tensor, Tensor>
{
    /// <summary>
    /// The alpha of every residual addition, held for the process's lifetime. <c>a + b</c> would pass a temporary
    /// <see cref="Scalar"/> (1) to LibTorch that nothing references during the native call: under GC pressure (a DDP worker
    /// allocates its relay buffers every step) the finalizer freed it mid-call and LibTorch failed in
    /// <c>Scalar::toFloat</c> ("Expected false to be true").
    /// </summary>
    private static readonly Scalar One = 1.ToScalar();

    private readonly Embedding _tokens;
    private readonly Embedding _positions;
    private readonly ModuleList<Block> _blocks;
    private readonly LayerNorm _final;
    private readonly Linear _head;

    public CharGpt(CharGptConfig config)
        : base("CharGpt")
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        _tokens = nn.Embedding(config.Vocabulary, config.DModel);
        _positions = nn.Embedding(config.Context, config.DModel);
        _blocks = nn.ModuleList([.. Enumerable.Range(0, config.Layers).Select(_ => new Block(config))]);
        _final = nn.LayerNorm(config.DModel);
        _head = nn.Linear(config.DModel, config.Vocabulary);
        register_module("tok_emb", _tokens);
        register_module("pos_emb", _positions);
        register_module("blocks", _blocks);
        register_module("ln_f", _final);
        register_module("head", _head);
        using (no_grad())
        {
            foreach (var (name, p) in named_parameters())
            {
                if (name.EndsWith(".bias", StringComparison.Ordinal))
                {
                    p.zero_();
                }
                else if (name.Contains("ln", StringComparison.Ordinal))
                {
                    p.fill_(1.0f);
                }
                else
                {
                    var residual = name.EndsWith("proj.weight", StringComparison.Ordinal);
                    nn.init.normal_(p, 0, residual ? 0.02 / Math.Sqrt(2.0 * config.Layers) : 0.02);
                }
            }
        }
    }

    public override Tensor forward(Tensor input)
    {
        var t = input.shape[1];
        using var positions = arange(t, dtype: ScalarType.Int64, device: input.device);
        using var tok = _tokens.forward(input);
        using var pos = _positions.forward(positions);
        var x = tok.add(pos, One);
        foreach (var block in _blocks)
        {
            var next = block.forward(x);
            x.Dispose();
            x = next;
        }

        using (x)
        {
            using var normed = _final.forward(x);
            return _head.forward(normed);
        }
    }

    /// <summary>One pre-LN block: x + attn(ln1(x)), then + mlp(ln2(x)).</summary>
    private sealed class Block : nn.Module<Tensor, Tensor>
    {
        private readonly LayerNorm _ln1;
        private readonly LayerNorm _ln2;
        private readonly Linear _qkv;
        private readonly Linear _attnProj;
        private readonly Linear _fc;
        private readonly Linear _mlpProj;
        private readonly int _heads;

        public Block(CharGptConfig config)
            : base("Block")
        {
            _heads = config.Heads;
            _ln1 = nn.LayerNorm(config.DModel);
            _ln2 = nn.LayerNorm(config.DModel);
            _qkv = nn.Linear(config.DModel, 3 * config.DModel);
            _attnProj = nn.Linear(config.DModel, config.DModel);
            _fc = nn.Linear(config.DModel, 4 * config.DModel);
            _mlpProj = nn.Linear(4 * config.DModel, config.DModel);
            register_module("ln1", _ln1);
            register_module("attn", new Holder(("qkv", _qkv), ("proj", _attnProj)));
            register_module("ln2", _ln2);
            register_module("mlp", new Holder(("fc", _fc), ("proj", _mlpProj)));
        }

        public override Tensor forward(Tensor x)
        {
            using var scope = NewDisposeScope();
            var (n, t, d) = (x.shape[0], x.shape[1], x.shape[2]);
            var hd = d / _heads;
            var qkv = _qkv.forward(_ln1.forward(x)).view(n, t, 3, _heads, hd).permute(2, 0, 3, 1, 4); // [3, N, H, T, hd]
            var attended = nn.functional.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], is_casual: true);
            var merged = attended.transpose(1, 2).contiguous().view(n, t, d);
            var h = x.add(_attnProj.forward(merged), One);
            var y = h.add(_mlpProj.forward(nn.functional.gelu(_fc.forward(_ln2.forward(h)))), One);
            return y.MoveToOuterDisposeScope();
        }
    }

    /// <summary>A named group of layers (gives <c>attn.qkv</c>, <c>mlp.fc</c>, … their PyTorch-style names).</summary>
    private sealed class Holder : nn.Module
    {
        public Holder(params (string Name, nn.Module Module)[] children)
            : base("Holder")
        {
            foreach (var (name, module) in children)
            {
                register_module(name, module);
            }
        }
    }
}
