using System.Collections.Immutable;
using NearML.Core;

namespace NearML.Training.Data;

/// <summary>
/// In-memory labelled samples: <see cref="Count"/> rows of <see cref="FeaturesPerSample"/> float32 features
/// (row-major in <see cref="Features"/>) with one integer class label each.
/// </summary>
public sealed class LabeledDataset
{
    /// <summary>Initializes a new instance (no copy).</summary>
    /// <param name="features">The features, row-major [count × product(sampleShape)].</param>
    /// <param name="labels">The labels, one per sample, in [0, <paramref name="classCount"/>).</param>
    /// <param name="sampleShape">The shape of one sample, e.g. [1, 28, 28].</param>
    /// <param name="classCount">The number of classes.</param>
    public LabeledDataset(float[] features, int[] labels, ReadOnlySpan<int> sampleShape, int classCount)
    {
        ArgumentNullException.ThrowIfNull(features);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(classCount);
        var per = 1;
        foreach (var d in sampleShape)
        {
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(d, nameof(sampleShape));
            per = checked(per * d);
        }

        if ((long)per * labels.Length != features.Length)
        {
            throw new ArgumentException($"{labels.Length} labels × {per} features per sample = {(long)per * labels.Length}, but {features.Length} features were given.", nameof(features));
        }

        for (var i = 0; i < labels.Length; i++)
        {
            if ((uint)labels[i] >= (uint)classCount)
            {
                throw new ArgumentOutOfRangeException(nameof(labels), labels[i], $"Label #{i} is {labels[i]}, outside [0, {classCount}).");
            }
        }

        Features = features;
        Labels = labels;
        SampleShape = [.. sampleShape];
        FeaturesPerSample = per;
        ClassCount = classCount;
    }

    /// <summary>Gets the features, row-major [Count × FeaturesPerSample].</summary>
    public float[] Features { get; }

    /// <summary>Gets the labels.</summary>
    public int[] Labels { get; }

    /// <summary>Gets the shape of one sample.</summary>
    public ImmutableArray<int> SampleShape { get; }

    /// <summary>Gets the number of features per sample.</summary>
    public int FeaturesPerSample { get; }

    /// <summary>Gets the number of classes.</summary>
    public int ClassCount { get; }

    /// <summary>Gets the number of samples.</summary>
    public int Count => Labels.Length;

    /// <summary>Gets the features of one sample.</summary>
    /// <param name="index">The sample index.</param>
    /// <returns>A view of its features.</returns>
    public ReadOnlySpan<float> GetFeatures(int index)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)index, (uint)Count, nameof(index));
        return Features.AsSpan(index * FeaturesPerSample, FeaturesPerSample);
    }

    /// <summary>Builds a dataset from unsigned-byte images and labels, scaling pixels as <c>x / 255</c> in float32.</summary>
    /// <param name="images">Images with dimensions [N, …].</param>
    /// <param name="labels">Labels with dimensions [N].</param>
    /// <param name="classCount">The number of classes.</param>
    /// <returns>The dataset.</returns>
    /// <exception cref="Core.InvalidDataFormatException">The types, dimensions or label values do not fit.</exception>
    public static LabeledDataset FromIdx(IdxArray images, IdxArray labels, int classCount)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(labels);
        var pixels = images.GetBytes();
        var labelBytes = labels.GetBytes();
        if (labels.Dimensions.Length != 1)
        {
            throw new Core.InvalidDataFormatException(labels.Source, 3, $"labels must have one dimension but have [{string.Join(", ", labels.Dimensions)}].");
        }

        if (labels.Count != images.Count)
        {
            throw new Core.InvalidDataFormatException(labels.Source, 4, $"{labels.Count} labels do not match {images.Count} images in {images.Source}.");
        }

        var features = new float[pixels.Length];
        for (var i = 0; i < pixels.Length; i++)
        {
            // Same as numpy's a.astype(float32) / float32(255): one correctly rounded float32 division.
            features[i] = pixels[i] / 255f;
        }

        var y = new int[labelBytes.Length];
        for (var i = 0; i < y.Length; i++)
        {
            if (labelBytes[i] >= classCount)
            {
                throw new Core.InvalidDataFormatException(labels.Source, 8 + i, $"label #{i} is {labelBytes[i]}, outside [0, {classCount}).");
            }

            y[i] = labelBytes[i];
        }

        var shape = images.Dimensions.Length == 1 ? [1] : images.Dimensions.AsSpan()[1..].ToArray();
        return new LabeledDataset(features, y, shape, classCount);
    }

    /// <summary>Returns the samples at the given indices as a new dataset (copied), e.g. one worker's shard.</summary>
    /// <param name="indices">The sample indices, in the order wanted.</param>
    /// <returns>The subset.</returns>
    public LabeledDataset Subset(ReadOnlySpan<int> indices)
    {
        var f = new float[indices.Length * FeaturesPerSample];
        var y = new int[indices.Length];
        for (var i = 0; i < indices.Length; i++)
        {
            GetFeatures(indices[i]).CopyTo(f.AsSpan(i * FeaturesPerSample));
            y[i] = Labels[indices[i]];
        }

        return new LabeledDataset(f, y, SampleShape.AsSpan(), ClassCount);
    }
}
