import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision import datasets, transforms
from torchvision.utils import save_image

from hw3_utils import show_grid


def get_data_loader(batch_size):
    # MNIST Dataset
    transform = transforms.Compose([
        transforms.Resize(32),
        transforms.ToTensor(),
        transforms.Normalize(mean=(0.5,), std=(0.5,))])

    train_dataset = datasets.MNIST(root='./data', train=True, download=True, transform=transform)

    # Data Loader
    train_loader = torch.utils.data.DataLoader(dataset=train_dataset, batch_size=batch_size,
                                               shuffle=True, num_workers=4)
    return train_loader


class Discriminator(nn.Module):
    def __init__(self):
        super(Discriminator, self).__init__()
        # Your code here
        self.conv1 = nn.Conv2d(1, 16, kernel_size=3, stride=1, padding=1)
        self.lrelu1 = nn.LeakyReLU(0.2)
        self.pool1 = nn.MaxPool2d(kernel_size=2, stride=2, padding=0)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, stride=1, padding=1)
        self.lrelu2 = nn.LeakyReLU(0.2)
        self.pool2 = nn.MaxPool2d(kernel_size=2, stride=2, padding=0)
        self.conv3 = nn.Conv2d(32, 64, kernel_size=3, stride=1, padding=1)
        self.lrelu3 = nn.LeakyReLU(0.2)
        self.pool3 = nn.MaxPool2d(kernel_size=2, stride=2, padding=0)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=3, stride=1, padding=1)
        self.lrelu4 = nn.LeakyReLU(0.2)
        self.pool4 = nn.MaxPool2d(kernel_size=4, stride=4, padding=0)
        self.fc = nn.Linear(128, 1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        """
        Input:
            x: (batch_size, 1, 32, 32) images
        Output:
            (batch_size) probabilities, in (0, 1)
        """
        # Your code here
        x = self.pool1(self.lrelu1(self.conv1(x)))   # (N, 16, 16, 16)
        x = self.pool2(self.lrelu2(self.conv2(x)))   # (N, 32, 8, 8)
        x = self.pool3(self.lrelu3(self.conv3(x)))   # (N, 64, 4, 4)
        x = self.pool4(self.lrelu4(self.conv4(x)))   # (N, 128, 1, 1)
        x = x.view(x.size(0), -1)                    # (N, 128)
        x = self.sigmoid(self.fc(x))                 # (N, 1)
        return x.view(-1)


class Generator(nn.Module):
    def __init__(self):
        super(Generator, self).__init__()
        # Your code here
        self.deconv1 = nn.ConvTranspose2d(128, 64, kernel_size=4, stride=1, padding=0)
        self.lrelu1 = nn.LeakyReLU(0.2)
        self.deconv2 = nn.ConvTranspose2d(64, 32, kernel_size=4, stride=2, padding=1)
        self.lrelu2 = nn.LeakyReLU(0.2)
        self.deconv3 = nn.ConvTranspose2d(32, 16, kernel_size=4, stride=2, padding=1)
        self.lrelu3 = nn.LeakyReLU(0.2)
        self.deconv4 = nn.ConvTranspose2d(16, 1, kernel_size=4, stride=2, padding=1)
        self.tanh = nn.Tanh()

    def forward(self, z):
        """
        Input:
            z: (batch_size, 128) latent vectors
        Output:
            (batch_size, 1, 32, 32) fake images, in (-1, 1)
        """
        # Your code here
        z = z.view(-1, 128, 1, 1)
        x = self.lrelu1(self.deconv1(z))   # (N, 64, 4, 4)
        x = self.lrelu2(self.deconv2(x))   # (N, 32, 8, 8)
        x = self.lrelu3(self.deconv3(x))   # (N, 16, 16, 16)
        x = self.tanh(self.deconv4(x))     # (N, 1, 32, 32)
        return x


class GAN(object):
    def __init__(self):
        self.device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
        self.data_loader = get_data_loader(batch_size=64)
        self.D = Discriminator().to(self.device)
        self.G = Generator().to(self.device)
        self.D_optimizer = torch.optim.Adam(self.D.parameters(), lr=0.0002)
        self.G_optimizer = torch.optim.Adam(self.G.parameters(), lr=0.001)

    def calculate_V(self, x, z):
        """
        Input:
            x: (batch_size, 1, 32, 32) real images
            z: (batch_size, 128) latent vectors
        Output:
            a tensor with one element, the objective V
        """
        # Your code here
        d_real = self.D(x)
        d_fake = self.D(self.G(z))
        V = torch.mean(torch.log(d_real)) + torch.mean(torch.log(1 - d_fake))
        return V

    def train(self, epochs):
        for epoch in range(epochs):
            print(f'Epoch {epoch}')
            for i, (x, _) in enumerate(self.data_loader):
                x = x.to(self.device)
                z = torch.randn(64, 128).to(self.device)

                # Training D
                self.D_optimizer.zero_grad()
                V = self.calculate_V(x, z)
                (-V).backward()
                self.D_optimizer.step()

                # Training G
                self.G_optimizer.zero_grad()
                V = self.calculate_V(x, z)
                V.backward()
                self.G_optimizer.step()

                if i % 100 == 0:
                    print(f'Iteration {i}, V = {V.item()}')
            self.visualize(f'Epoch {epoch}.png')

    def visualize(self, save_path):
        # sample some z, generate fake images and save them
        z = torch.randn(64, 128).to(self.device)
        fake_images = self.G(z)
        save_image(fake_images, save_path, nrow=8, normalize=True)


if __name__ == '__main__':
    gan = GAN()
    gan.train(epochs=10)
    show_grid(gan.G(torch.randn(64, 128).to(gan.device)))
